/**
 * The Jobs panel of the sidebar: the jobs this login sees, with their schedule and next run;
 * pause, resume, run now, delete. Jobs run on Workbench's scheduler, so they go on after
 * JupyterLab closes.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';

import { post, request } from './api';
import { button, element, inZone, span } from './dom';
import { ListPanel } from './panel';
import { watch } from './watch';

const REFRESH_MS = 5000;

/** A job as the API lists it. */
export interface IJob {
  name: string;
  notebook: string;
  schedule: string | null;
  timezone: string;
  paused: boolean;
  next_run_at: string | null;
  team_id?: string | null;
  last_run: { id: string; status: string; finished_at: string | null } | null;
}

export class JobsPanel extends ListPanel<IJob> {
  constructor(private readonly app: JupyterFrontEnd) {
    super({
      id: 'workbench-jobs',
      label: 'Jobs',
      listLabel: 'Jobs, by name',
      className: 'wb-Jobs',
      refreshMs: REFRESH_MS,
      empty: 'No jobs yet. “Run with Workbench”, then “Schedule…”, saves one.'
    });
    this.node.append(this.bar, this.rows, this.message);
  }

  protected fetch(): Promise<IJob[]> {
    return request<{ jobs: IJob[] }>('jobs').then(answer => answer.jobs);
  }

  private act(job: IJob, act: 'pause' | 'resume' | 'trigger'): void {
    void post<{ id?: string }>(`jobs/${encodeURIComponent(job.name)}/${act}`, {})
      .then(answer => {
        if (act === 'trigger' && answer.id) {
          watch(this.app, answer.id); // a notification when it ends
        }
      })
      .catch(error => (this.message.textContent = (error as Error).message))
      .then(() => this.refresh());
  }

  private async remove(job: IJob): Promise<void> {
    const answer = await showDialog({
      title: `Delete job ${job.name}?`,
      body: 'Its schedule ends; its past runs and their outputs stay.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await request(`jobs/${encodeURIComponent(job.name)}`, { method: 'DELETE' });
    } catch (error) {
      this.message.textContent = (error as Error).message;
    }
    await this.refresh();
  }

  protected row(job: IJob): HTMLLIElement {
    const item = element('li', 'wb-Runs-item');
    item.dataset.job = job.name;
    item.dataset.paused = String(job.paused);
    const top = element('div', 'wb-Runs-line');
    const name = span(job.name, 'wb-Runs-notebook');
    name.title = job.notebook;
    const state = job.paused ? 'paused' : job.schedule ? job.schedule : 'on demand';
    top.append(name, span(state, `wb-Runs-status${job.paused ? ' wb-mod-paused' : ''}`));
    const bottom = element('div', 'wb-Runs-line wb-Runs-details');
    const next = job.paused || !job.schedule ? '' : inZone(job.next_run_at, job.timezone);
    const facts = next
      ? `next ${next}`
      : job.paused && job.schedule
        ? `${job.schedule} (${job.timezone})`
        : '';
    const details = span(facts, 'wb-Runs-facts wb-Jobs-next');
    if (job.last_run) {
      const last = span(
        `last ${job.last_run.status}`,
        `wb-Jobs-last wb-Runs-status wb-mod-${job.last_run.status}`
      );
      last.title = `run ${job.last_run.id}`;
      details.append(document.createElement('br'), last);
    }
    bottom.append(details);
    const actions = span('', 'wb-Runs-actions');
    actions.append(
      button('Run now', 'Queue a run of this job now', () => this.act(job, 'trigger'))
    );
    if (job.schedule) {
      actions.append(
        job.paused
          ? button('Resume', 'Resume the schedule', () => this.act(job, 'resume'))
          : button('Pause', 'Pause the schedule', () => this.act(job, 'pause'))
      );
    }
    actions.append(button('Delete', 'Delete this job', () => void this.remove(job)));
    bottom.append(actions);
    item.append(top, bottom);
    return item;
  }
}
