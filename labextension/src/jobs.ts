/**
 * The Jobs panel of the sidebar: the jobs this login sees, with their schedule and next run;
 * pause, resume, run now, delete. Jobs run on Workbench's scheduler, so they go on after
 * JupyterLab closes.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { ServerConnection } from '@jupyterlab/services';

import { apiUrl, post, request } from './api';
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

function when(iso: string | null, zone: string): string {
  if (!iso) {
    return '';
  }
  try {
    return new Date(iso).toLocaleString(undefined, {
      timeZone: zone,
      month: 'short',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      timeZoneName: 'short'
    });
  } catch {
    return iso;
  }
}

export class JobsPanel extends Widget {
  private readonly rows = document.createElement('ul');
  private readonly message = document.createElement('div');
  private timer = 0;
  /** What is shown, so a refresh that finds nothing new leaves the buttons under the mouse. */
  private shown = '';

  constructor(private readonly app: JupyterFrontEnd) {
    super();
    this.id = 'workbench-jobs';
    this.addClass('wb-Runs');
    this.addClass('wb-Jobs');
    this.title.caption = 'Workbench jobs';
    this.title.label = 'Jobs';
    const bar = document.createElement('div');
    bar.className = 'wb-Runs-bar';
    const heading = document.createElement('h2');
    heading.textContent = 'Workbench jobs';
    bar.append(heading);
    this.rows.className = 'wb-Runs-list';
    this.rows.setAttribute('aria-label', 'Jobs, by name');
    this.message.className = 'wb-Runs-message';
    this.node.append(bar, this.rows, this.message);
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  protected onBeforeHide(): void {
    window.clearTimeout(this.timer);
  }

  async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    try {
      const answer = await request<{ jobs: IJob[] }>('jobs');
      const seen = JSON.stringify(answer.jobs);
      if (seen !== this.shown) {
        this.shown = seen;
        this.render(answer.jobs);
      }
    } catch (error) {
      this.message.textContent = (error as Error).message;
    }
    if (this.isVisible) {
      this.timer = window.setTimeout(() => void this.refresh(), REFRESH_MS);
    }
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
    const settings = ServerConnection.makeSettings();
    const url = apiUrl(`jobs/${encodeURIComponent(job.name)}`);
    const reply = await ServerConnection.makeRequest(url, { method: 'DELETE' }, settings);
    if (!reply.ok) {
      const body = await reply.json().catch(() => ({}));
      this.message.textContent = body.message ?? `The job was not deleted (${reply.status}).`;
    }
    await this.refresh();
  }

  private render(jobs: IJob[]): void {
    this.rows.replaceChildren();
    this.message.textContent = jobs.length
      ? ''
      : 'No jobs yet. “Run with Workbench”, then “Schedule…”, saves one.';
    for (const job of jobs) {
      const item = document.createElement('li');
      item.className = 'wb-Runs-item';
      item.dataset.job = job.name;
      item.dataset.paused = String(job.paused);
      const top = document.createElement('div');
      top.className = 'wb-Runs-line';
      const name = span(job.name, 'wb-Runs-notebook');
      name.title = job.notebook;
      const state = job.paused ? 'paused' : job.schedule ? job.schedule : 'on demand';
      top.append(name, span(state, `wb-Runs-status${job.paused ? ' wb-mod-paused' : ''}`));
      const bottom = document.createElement('div');
      bottom.className = 'wb-Runs-line wb-Runs-details';
      const next = job.paused || !job.schedule ? '' : when(job.next_run_at, job.timezone);
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
      this.rows.appendChild(item);
    }
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }
}
