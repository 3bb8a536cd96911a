/**
 * The Data panel of the sidebar: the tables this login may read (its teams' and those shared
 * with it), each opening to its columns and types, rows, owner and last write, with buttons
 * that insert a `wb.read_table(...)` or a `%%sql` cell into the active notebook.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { request } from './api';
import { LOAD_MAGICS, readSnippet, sqlSnippet } from './form';

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

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = text;
  return node;
}

export class DataPanel extends Widget {
  private readonly list = element('ul', 'wb-Runs-list');
  private readonly message = element('div', 'wb-Runs-message');

  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly notebooks: INotebookTracker
  ) {
    super();
    this.id = 'workbench-data';
    this.addClass('wb-Runs');
    this.addClass('wb-Data');
    this.title.caption = 'Workbench data';
    this.title.label = 'Data';
    const bar = element('div', 'wb-Runs-bar');
    bar.append(element('h2', '', 'Workbench data'));
    const refresh = element('button', 'jp-Button jp-mod-minimal wb-Runs-action', 'Refresh');
    refresh.onclick = () => void this.refresh();
    bar.append(refresh);
    this.list.setAttribute('aria-label', 'Tables');
    this.node.append(bar, this.list, this.message);
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  async refresh(): Promise<void> {
    try {
      const answer = await request<{ tables: ITableSummary[] }>('tables');
      this.render(answer.tables);
    } catch (error) {
      this.message.textContent = (error as Error).message;
    }
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
    item.appendChild(box);
  }

  private render(tables: ITableSummary[]): void {
    this.list.replaceChildren();
    this.message.textContent = tables.length
      ? ''
      : 'No tables yet: wb.write(frame, "name") or `workbench ingest` makes one.';
    for (const table of tables) {
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
      this.list.appendChild(item);
    }
  }
}
