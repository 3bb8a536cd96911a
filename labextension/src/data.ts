/**
 * The Data panel of the sidebar: the tables this login may read (its teams' and those shared
 * with it), each opening to its columns and types, rows, owner and last write, with buttons
 * that insert a `wb.read_table(...)` or a `%%sql` cell into the active notebook, and (team mode)
 * a form that shares it with a team.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';

import { post, request, signedIn } from './api';
import { element } from './dom';
import { LOAD_MAGICS, readSnippet, sqlSnippet } from './form';
import { ListPanel } from './panel';

interface ITableSummary {
  name: string;
  last_write_at: string | null;
  last_write_rows: number | null;
}

interface IColumn {
  name: string;
  database_type: string;
  dtype: string;
  nullable: boolean;
}

interface ITable extends ITableSummary {
  rows: number;
  owner: string | null;
  columns: IColumn[];
}

export class DataPanel extends ListPanel<ITableSummary> {
  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly notebooks: INotebookTracker
  ) {
    super({
      id: 'workbench-data',
      label: 'Data',
      listLabel: 'Tables',
      className: 'wb-Data',
      refreshMs: 0,
      empty: 'No tables yet: wb.write(frame, "name") or `workbench ingest` makes one.'
    });
    const refresh = element('button', 'jp-Button jp-mod-minimal wb-Runs-action', 'Refresh');
    refresh.onclick = () => void this.refresh();
    this.bar.append(refresh);
    this.node.append(this.bar, this.rows, this.message);
  }

  protected fetch(): Promise<ITableSummary[]> {
    return request<{ tables: ITableSummary[] }>('tables').then(answer => answer.tables);
  }

  private insert(code: string, magics = false): void {
    const panel = this.notebooks.currentWidget;
    if (!panel) {
      this.message.textContent = 'Open a notebook first: the snippet goes below its active cell.';
      return;
    }
    const sources = panel.content.widgets.map(cell => cell.model.sharedModel.getSource());
    if (magics && !sources.some(source => source.includes(LOAD_MAGICS))) {
      NotebookActions.insertBelow(panel.content);
      panel.content.activeCell?.model.sharedModel.setSource(LOAD_MAGICS);
    }
    NotebookActions.insertBelow(panel.content);
    panel.content.activeCell?.model.sharedModel.setSource(code);
    this.app.shell.activateById(panel.id);
    this.message.textContent = '';
  }

  private async open(item: HTMLElement, name: string): Promise<void> {
    const details = item.querySelector('.wb-Data-details');
    if (details) {
      details.remove();
      return;
    }
    let table: ITable;
    try {
      table = await request<ITable>(`tables/${encodeURIComponent(name)}`);
    } catch (error) {
      this.message.textContent = (error as Error).message;
      return;
    }
    const box = element('div', 'wb-Data-details');
    const facts = [`${table.rows.toLocaleString()} rows`];
    if (table.owner) {
      facts.push(`team ${table.owner}`);
    }
    if (table.last_write_at) {
      facts.push(`written ${new Date(table.last_write_at).toLocaleString()}`);
    }
    box.append(element('div', 'wb-Runs-details', facts.join(' · ')));
    const columns = element('table', 'wb-Data-columns');
    for (const column of table.columns) {
      const row = document.createElement('tr');
      row.append(
        element('td', 'wb-Data-column', column.name),
        element('td', 'wb-Data-type', column.database_type + (column.nullable ? '' : ' not null'))
      );
      columns.appendChild(row);
    }
    const actions = element('div', 'wb-Runs-actions');
    const read = element('button', 'jp-Button jp-mod-minimal wb-Runs-action', 'Insert read_table');
    read.title = 'Insert a cell reading this table into the active notebook';
    read.onclick = () => this.insert(readSnippet(name));
    const sql = element('button', 'jp-Button jp-mod-minimal wb-Runs-action', 'Insert %%sql');
    sql.title = 'Insert a %%sql cell querying this table into the active notebook';
    sql.onclick = () => this.insert(sqlSnippet(name, table.columns.map(c => c.name)), true);
    actions.append(read, sql);
    box.append(columns, actions);
    if ((await signedIn().catch(() => null))?.mode === 'team') {
      box.append(this.shareForm(name));
    }
    item.appendChild(box);
  }

  /** A team's name and "Share": the database decides whether this login may share it. */
  private shareForm(name: string): HTMLElement {
    const form = element('form', 'wb-Data-share');
    const team = element('input', 'jp-mod-styled wb-Form-input');
    team.placeholder = 'team (empty: every user)';
    team.setAttribute('aria-label', `Share ${name} with this team`);
    const send = element('button', 'jp-Button jp-mod-minimal wb-Runs-action', 'Share');
    send.type = 'submit';
    const said = element('div', 'wb-Runs-details');
    said.setAttribute('role', 'status');
    form.onsubmit = event => {
      event.preventDefault();
      void this.share(name, team.value.trim() || null, said);
    };
    form.append(team, send, said);
    return form;
  }

  private async share(name: string, team: string | null, said: HTMLElement): Promise<void> {
    if (team === null) {
      const answer = await showDialog({
        title: `Share ${name} with every user?`,
        body: 'Every account, viewers too, may then read its rows (not write them).',
        buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Share' })]
      });
      if (!answer.button.accept) {
        return;
      }
    }
    try {
      await post(`tables/${encodeURIComponent(name)}/share`, { team });
      said.textContent = team ? `Team ${team} may read ${name}.` : `Every user may read ${name}.`;
      said.classList.remove('wb-Form-error');
    } catch (error) {
      said.textContent = (error as Error).message;
      said.classList.add('wb-Form-error');
    }
  }

  protected row(table: ITableSummary): HTMLLIElement {
    const item = element('li', 'wb-Runs-item');
    item.dataset.table = table.name;
    const line = element('div', 'wb-Runs-line');
    const name = element('button', 'wb-Data-name', table.name);
    name.setAttribute('aria-expanded', 'false');
    name.onclick = () => {
      name.setAttribute(
        'aria-expanded',
        String(name.getAttribute('aria-expanded') !== 'true')
      );
      void this.open(item, table.name);
    };
    const rows = table.last_write_rows === null ? '' : `${table.last_write_rows} rows written`;
    line.append(name, element('span', 'wb-Runs-details', rows));
    item.append(line);
    return item;
  }
}
