/**
 * Workbench in JupyterLab: "Run with Workbench" on a notebook's toolbar, in the file browser's
 * context menu and in the command palette; the Runs, Jobs and Data panels in the left sidebar;
 * a launcher tile for each dashboard of the project.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import {
  historyIcon,
  launchIcon,
  listIcon,
  runIcon,
  tableRowsIcon
} from '@jupyterlab/ui-components';
import { IDisposable } from '@lumino/disposable';

import { request } from './api';
import { DataPanel } from './data';
import { RunDialog } from './dialog';
import { JobsPanel } from './jobs';
import { RunsPanel } from './runs';

const RUN = 'workbench:run-notebook';
const RUNS = 'workbench:show-runs';
const JOBS = 'workbench:show-jobs';
const DATA = 'workbench:show-data';
const DASHBOARD = 'workbench:open-dashboard';
const CATEGORY = 'Workbench';

interface IDashboard {
  name: string;
  title: string;
  description: string;
  path: string;
  url: string | null;
}

/** A launcher tile for each dashboard of the server's `dashboards/` folder. */
async function addDashboards(app: JupyterFrontEnd, launcher: ILauncher): Promise<void> {
  app.commands.addCommand(DASHBOARD, {
    label: args => String(args.title ?? 'Dashboard'),
    caption: args =>
      args.url
        ? `Open ${args.title} on the dashboards server, as stakeholders see it`
        : `Open the notebook of ${args.title} (set WORKBENCH_DASHBOARDS_URL to open it as a dashboard)`,
    icon: launchIcon,
    execute: args => {
      if (typeof args.url === 'string') {
        window.open(args.url, '_blank', 'noopener');
      } else {
        return app.commands.execute('docmanager:open', { path: String(args.path) });
      }
    }
  });
  let found: IDashboard[] = [];
  try {
    found = (await request<{ dashboards: IDashboard[] }>('dashboards')).dashboards;
  } catch {
    return; // no tiles: the panels say what is wrong with the server
  }
  found.forEach((dashboard, rank) => {
    launcher.add({
      command: DASHBOARD,
      args: { ...dashboard },
      category: 'Workbench dashboards',
      rank
    });
  });
}

/** The toolbar button of every notebook. */
class RunButton implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private readonly app: JupyterFrontEnd) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      icon: runIcon,
      label: 'Run with Workbench',
      tooltip: 'Run this notebook with Workbench, its parameters in a form',
      className: 'wb-RunButton',
      onClick: () => void this.app.commands.execute(RUN, { path: panel.context.path })
    });
    panel.toolbar.insertItem(10, 'workbench-run', button);
    return button;
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'workbench-lab:plugin',
  description: 'Run notebooks with Workbench and follow their runs.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, IFileBrowserFactory, ILayoutRestorer, ILauncher],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    palette: ICommandPalette | null,
    browsers: IFileBrowserFactory | null,
    restorer: ILayoutRestorer | null,
    launcher: ILauncher | null
  ) => {
    const runs = new RunsPanel(app);
    runs.title.icon = listIcon;
    app.shell.add(runs, 'left', { rank: 650 });
    restorer?.add(runs, runs.id);
    const data = new DataPanel(app, notebooks);
    data.title.icon = tableRowsIcon;
    app.shell.add(data, 'left', { rank: 652 });
    restorer?.add(data, data.id);
    const jobs = new JobsPanel(app);
    jobs.title.icon = historyIcon;
    app.shell.add(jobs, 'left', { rank: 651 });
    restorer?.add(jobs, jobs.id);

    const pathOf = (args: Record<string, unknown>): string | undefined => {
      if (typeof args.path === 'string') {
        return args.path;
      }
      const selected = browsers?.tracker.currentWidget?.selectedItems().next();
      if (selected && !selected.done && selected.value.path.endsWith('.ipynb')) {
        return selected.value.path;
      }
      return notebooks.currentWidget?.context.path;
    };
    app.commands.addCommand(RUN, {
      label: 'Run with Workbench…',
      caption: 'Run a notebook with Workbench, its typed parameters in a form',
      icon: runIcon,
      isEnabled: () => pathOf({}) !== undefined,
      execute: async args => {
        const path = pathOf(args);
        if (path) {
          const dialog = new RunDialog(app, path);
          dialog.saved = () => void jobs.refresh();
          await dialog.open();
          void runs.refresh();
        }
      }
    });
    app.commands.addCommand(RUNS, {
      label: 'Show Workbench Runs',
      execute: () => app.shell.activateById(runs.id)
    });
    app.commands.addCommand(JOBS, {
      label: 'Show Workbench Jobs',
      execute: () => app.shell.activateById(jobs.id)
    });
    app.docRegistry.addWidgetExtension('Notebook', new RunButton(app));
    app.contextMenu.addItem({
      command: RUN,
      selector: '.jp-DirListing-item[data-file-type="notebook"]',
      rank: 20
    });
    palette?.addItem({ command: RUN, category: CATEGORY });
    palette?.addItem({ command: RUNS, category: CATEGORY });
    palette?.addItem({ command: JOBS, category: CATEGORY });
    app.commands.addCommand(DATA, {
      label: 'Show Workbench Data',
      execute: () => app.shell.activateById(data.id)
    });
    palette?.addItem({ command: DATA, category: CATEGORY });
    if (launcher) {
      void addDashboards(app, launcher);
    }
  }
};

export default plugin;
