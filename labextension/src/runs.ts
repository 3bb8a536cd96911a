/**
 * The Runs panel of the sidebar: the analyst's runs, newest first, with their status,
 * progress, duration and who started them; open a finished run's output, cancel a waiting or
 * running one. It asks the API again every few seconds while it is shown.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Widget } from '@lumino/widgets';

import { IRun, post, progress, request, took } from './api';
import { openOutput } from './output';
import { watch } from './watch';

const REFRESH_MS = 3000;
const STATUSES = ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];
const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

function span(text: string, className: string): HTMLSpanElement {
  const node = document.createElement('span');
  node.textContent = text;
  node.className = className;
  return node;
}

function button(label: string, title: string, onclick: () => void): HTMLButtonElement {
  const node = document.createElement('button');
  node.className = 'jp-Button jp-mod-minimal wb-Runs-action';
  node.textContent = label;
  node.title = title;
  node.onclick = onclick;
  return node;
}

export class RunsPanel extends Widget {
  private readonly rows = document.createElement('ul');
  private readonly message = document.createElement('div');
  private readonly status = document.createElement('select');
  private readonly notebook = document.createElement('select');
  private timer = 0;
  /** What is shown, so a refresh that finds nothing new leaves the buttons under the mouse. */
  private shown = '';

  constructor(private readonly app: JupyterFrontEnd) {
    super();
    this.id = 'workbench-runs';
    this.addClass('wb-Runs');
    this.title.caption = 'Workbench runs';
    this.title.label = 'Runs';
    const bar = document.createElement('div');
    bar.className = 'wb-Runs-bar';
    const heading = document.createElement('h2');
    heading.textContent = 'Workbench runs';
    this.status.className = 'jp-mod-styled';
    this.status.setAttribute('aria-label', 'Show runs of this status');
    for (const value of STATUSES) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = value || 'all';
      this.status.appendChild(option);
    }
    this.status.onchange = () => void this.refresh();
    this.notebook.className = 'jp-mod-styled';
    this.notebook.setAttribute('aria-label', 'Show runs of this notebook');
    this.notebook.onchange = () => void this.refresh();
    const filters = document.createElement('div');
    filters.className = 'wb-Runs-filters';
    filters.append(this.notebook, this.status);
    bar.append(heading);
    this.rows.className = 'wb-Runs-list';
    this.rows.setAttribute('aria-label', 'Runs, newest first');
    this.message.className = 'wb-Runs-message';
    this.node.append(bar, filters, this.rows, this.message);
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  protected onBeforeHide(): void {
    window.clearTimeout(this.timer);
  }

  /** Read the runs again (and again in a few seconds while the panel is shown). */
  async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    const status = this.status.value;
    try {
      const answer = await request<{ runs: IRun[] }>(
        `runs?limit=100${status ? `&status=${status}` : ''}`
      );
      const seen = JSON.stringify([answer.runs, this.notebook.value]);
      if (seen !== this.shown) {
        this.shown = seen;
        this.render(answer.runs);
      }
    } catch (error) {
      this.message.textContent = (error as Error).message;
    }
    if (this.isVisible) {
      this.timer = window.setTimeout(() => void this.refresh(), REFRESH_MS);
    }
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

  private render(all: IRun[]): void {
    this.notebooks(all);
    const runs = this.notebook.value ? all.filter(r => r.notebook === this.notebook.value) : all;
    this.rows.replaceChildren();
    this.message.textContent = runs.length
      ? ''
      : 'No runs yet. Open a notebook and press “Run with Workbench” in its toolbar.';
    for (const run of runs) {
      const item = document.createElement('li');
      item.className = 'wb-Runs-item';
      item.dataset.run = run.id;
      item.dataset.status = run.status;
      const name = run.notebook.split('/').pop() ?? run.notebook;
      const top = document.createElement('div');
      top.className = 'wb-Runs-line';
      const notebook = span(name, 'wb-Runs-notebook');
      notebook.title = `${run.notebook}\nrun ${run.id}`;
      const state = span(progress(run) || run.status, `wb-Runs-status wb-mod-${run.status}`);
      if (run.error_name) {
        state.title = run.error_name;
      }
      top.append(notebook, state);
      const bottom = document.createElement('div');
      bottom.className = 'wb-Runs-line wb-Runs-details';
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
      this.rows.appendChild(item);
    }
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }
}
