/** A run's output notebook, opened in a JupyterLab tab (the server serves it sandboxed). */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { IFrame, MainAreaWidget } from '@jupyterlab/apputils';

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
