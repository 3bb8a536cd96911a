/**
 * A run's output notebook, opened in a JupyterLab tab (the server serves it sandboxed), and a
 * run's failing cell, shown in its notebook.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { IFrame, MainAreaWidget } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';

import { apiUrl } from './api';

export function openOutput(app: JupyterFrontEnd, runId: string, notebook: string): void {
  const frame = new IFrame({ sandbox: [] });
  frame.url = apiUrl(`runs/${runId}/output`);
  const tab = new MainAreaWidget({ content: frame });
  tab.id = `workbench-output-${runId}`;
  tab.title.label = `Output of ${notebook.split('/').pop()}`;
  tab.title.caption = `Run ${runId}`;
  tab.title.closable = true;
  tab.addClass('wb-Output');
  app.shell.add(tab, 'main');
  app.shell.activateById(tab.id);
}

/** Open the notebook at ``path`` (relative to the server's folder) with cell ``cell`` (from 1,
 * as JupyterLab numbers them) active and in view: where a failed run stopped. */
export async function openCell(app: JupyterFrontEnd, path: string, cell: number): Promise<void> {
  const widget = (await app.commands.execute('docmanager:open', { path })) as NotebookPanel;
  await widget.context.ready;
  await widget.revealed;
  const notebook = widget.content;
  const index = Math.min(Math.max(cell - 1, 0), notebook.widgets.length - 1);
  notebook.activeCellIndex = index;
  await notebook.scrollToItem(index, 'center');
  app.shell.activateById(widget.id);
}
