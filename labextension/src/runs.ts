/**
 * The Runs panel of the sidebar: the analyst's runs, newest first, with their status,
 * progress, duration and who started them; open a finished run's output, cancel a waiting or
 * running one. It asks the API again every few seconds while it is shown.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';

import { IRun, post, progress, request, took } from './api';
import { button, element, span } from './dom';
import { openCell, openOutput } from './output';
import { ListPanel } from './panel';
import { watch } from './watch';

const REFRESH_MS = 3000;
const STATUSES = ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];
const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

export class RunsPanel extends ListPanel<IRun> {
  private readonly status = element('select', 'jp-mod-styled');
  private readonly notebook = element('select', 'jp-mod-styled');

  constructor(private readonly app: JupyterFrontEnd) {
    super({
      id: 'workbench-runs',
      label: 'Runs',
      listLabel: 'Runs, newest first',
      className: 'wb-RunsPanel',
      refreshMs: REFRESH_MS,
      empty: 'No runs yet. Open a notebook and press “Run with Workbench” in its toolbar.'
    });
    this.status.setAttribute('aria-label', 'Show runs of this status');
    for (const value of STATUSES) {
      const option = element('option', '', value || 'all');
      option.value = value;
      this.status.appendChild(option);
    }
    this.status.onchange = () => void this.refresh();
    this.notebook.setAttribute('aria-label', 'Show runs of this notebook');
    this.notebook.onchange = () => void this.redraw();
    const filters = element('div', 'wb-Runs-filters');
    filters.append(this.notebook, this.status);
    this.node.append(this.bar, filters, this.rows, this.message);
  }

  protected fetch(): Promise<IRun[]> {
    const status = this.status.value;
    return request<{ runs: IRun[] }>(`runs?limit=100${status ? `&status=${status}` : ''}`).then(
      answer => answer.runs
    );
  }

  protected key(runs: IRun[]): string {
    return JSON.stringify([runs, this.notebook.value]);
  }

  /** The notebooks of the runs listed, as choices of the filter (the choice is kept). */
  private notebooks(runs: IRun[]): void {
    const chosen = this.notebook.value;
    const paths = [...new Set(runs.map(run => run.notebook))].sort();
    this.notebook.replaceChildren();
    const all = document.createElement('option');
    all.value = '';
    all.textContent = 'all notebooks';
    this.notebook.appendChild(all);
    for (const path of paths) {
      const option = document.createElement('option');
      option.value = path;
      option.textContent = path.split('/').pop() ?? path;
      option.title = path;
      this.notebook.appendChild(option);
    }
    this.notebook.value = paths.includes(chosen) ? chosen : '';
  }

  protected render(all: IRun[]): void {
    this.notebooks(all);
    super.render(this.notebook.value ? all.filter(r => r.notebook === this.notebook.value) : all);
  }

  protected row(run: IRun): HTMLLIElement {
    const item = element('li', 'wb-Runs-item');
    item.dataset.run = run.id;
    item.dataset.status = run.status;
    const name = run.notebook.split('/').pop() ?? run.notebook;
    const top = element('div', 'wb-Runs-line');
    const notebook = span(name, 'wb-Runs-notebook');
    notebook.title = `${run.notebook}\nrun ${run.id}`;
    const state = span(progress(run) || run.status, `wb-Runs-status wb-mod-${run.status}`);
    if (run.error_name) {
      state.title = run.error_name + (run.error_cell ? ` in cell ${run.error_cell}` : '');
    }
    top.append(notebook, state);
    const bottom = element('div', 'wb-Runs-line wb-Runs-details');
    const facts = [took(run), run.triggered_by ? `by ${run.triggered_by}` : '']
      .filter(Boolean)
      .join(' · ');
    bottom.append(span(facts, 'wb-Runs-facts'));
    const actions = span('', 'wb-Runs-actions');
    if (run.status === 'succeeded' || run.status === 'failed') {
      actions.append(
        button('Output', 'Open the output notebook', () =>
          openOutput(this.app, run.id, run.notebook)
        )
      );
    }
    if (run.status === 'failed' && run.path && run.error_cell) {
      const path = run.path;
      const cell = run.error_cell;
      actions.append(
        button(`Cell ${cell}`, `Open the notebook at cell ${cell}, where the run failed`, () => {
          void openCell(this.app, path, cell);
        })
      );
    }
    if (FINISHED.has(run.status)) {
      actions.append(
        button('Re-run', 'Run this notebook again with the same parameters', () => {
          void post<{ id: string }>(`runs/${run.id}/rerun`, {})
            .then(queued => watch(this.app, queued.id))
            .catch(error => (this.message.textContent = (error as Error).message))
            .then(() => this.refresh());
        })
      );
    }
    if (run.status === 'queued' || run.status === 'running') {
      actions.append(
        button('Cancel', 'Cancel this run', () => {
          void post(`runs/${run.id}/cancel`, {})
            .catch(error => (this.message.textContent = (error as Error).message))
            .then(() => this.refresh());
        })
      );
    }
    bottom.append(actions);
    item.append(top, bottom);
    return item;
  }
}
