/**
 * JupyterLab notifications for the runs started from this page: once a run ends, a toast says
 * so, with its error when it failed, and offers its output and the failing cell. It keeps
 * watching after the run dialog is closed.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';

import { IRun, request } from './api';
import { openCell, openOutput } from './output';

const POLL_MS = 2000;
const watched = new Set<string>();

export function watch(app: JupyterFrontEnd, runId: string): void {
  if (watched.has(runId)) {
    return;
  }
  watched.add(runId);
  const check = async (): Promise<void> => {
    let run: IRun;
    try {
      run = await request<IRun>(`runs/${runId}`);
    } catch {
      window.setTimeout(() => void check(), POLL_MS * 5);
      return;
    }
    const name = run.notebook.split('/').pop() ?? run.notebook;
    const output = {
      label: 'Open output',
      caption: 'Open the output notebook in a tab',
      callback: () => openOutput(app, run.id, run.notebook)
    };
    if (run.status === 'succeeded') {
      Notification.success(`Run of ${name} succeeded (${run.id.slice(0, 8)}).`, {
        autoClose: 8000,
        actions: [output]
      });
    } else if (run.status === 'failed') {
      const why = [run.error_name, run.error_message].filter(Boolean).join(': ');
      const actions = [output];
      if (run.path && run.error_cell) {
        const path = run.path;
        const cell = run.error_cell;
        actions.push({
          label: `Go to cell ${cell}`,
          caption: 'Open the notebook at the cell that failed',
          callback: () => void openCell(app, path, cell)
        });
      }
      const where = run.error_cell ? ` in cell ${run.error_cell}` : '';
      Notification.error(`Run of ${name} failed${where}${why ? `: ${why}` : ''}.`, {
        autoClose: false,
        actions
      });
    } else if (run.status === 'cancelled') {
      Notification.info(`Run of ${name} was cancelled.`, { autoClose: 5000 });
    } else {
      window.setTimeout(() => void check(), POLL_MS);
      return;
    }
    watched.delete(runId);
  };
  void check();
}
