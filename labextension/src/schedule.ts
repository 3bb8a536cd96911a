/**
 * The scheduling part of the run dialog: the job's name, a cron schedule with a preview of its
 * next five run times in the chosen time zone (asked of the server as it is typed), retries,
 * timeout, concurrency and catch-up. What it checks itself is only the shape of its numbers;
 * the server checks the rest and says what is wrong.
 */
import { ApiError, request } from './api';
import { inZone } from './dom';
import { jobName, localZone, wholeNumber } from './form';

const PREVIEW_DELAY_MS = 300;

/** A job's fields as the API takes them (besides the notebook and its parameters). */
export interface IJobFields {
  name: string;
  schedule: string;
  timezone: string;
  retries: number;
  max_concurrency: number;
  catchup: string;
  timeout?: number;
}

function row(label: string, control: HTMLElement, help: string): HTMLElement {
  const field = document.createElement('div');
  field.className = 'wb-Form-field';
  const caption = document.createElement('label');
  caption.className = 'wb-Form-label';
  caption.textContent = label;
  caption.htmlFor = control.id;
  const note = document.createElement('div');
  note.className = 'wb-Form-help';
  note.textContent = help;
  const error = document.createElement('div');
  error.className = 'wb-Form-error';
  error.setAttribute('role', 'alert');
  field.append(caption, control, note, error);
  return field;
}

function textBox(id: string, value: string, placeholder = ''): HTMLInputElement {
  const box = document.createElement('input');
  box.className = 'jp-mod-styled wb-Form-input';
  box.id = id;
  box.value = value;
  box.placeholder = placeholder;
  box.spellcheck = false;
  return box;
}

export class ScheduleSection {
  readonly node = document.createElement('fieldset');
  private readonly name: HTMLInputElement;
  private readonly cron = textBox('wb-job-schedule', '', '0 6 * * 1-5');
  private readonly zone = textBox('wb-job-timezone', localZone(), 'UTC');
  private readonly retries = textBox('wb-job-retries', '0');
  private readonly timeout = textBox('wb-job-timeout', '', 'no limit');
  private readonly concurrency = textBox('wb-job-concurrency', '1');
  private readonly catchup = document.createElement('select');
  private readonly preview = document.createElement('ol');
  private timer = 0;
  private asked = '';

  constructor(path: string) {
    this.node.className = 'wb-Schedule';
    this.node.hidden = true;
    const legend = document.createElement('legend');
    legend.textContent = 'Schedule';
    this.name = textBox('wb-job-name', jobName(path));
    this.catchup.className = 'jp-mod-styled wb-Form-input';
    this.catchup.id = 'wb-job-catchup';
    for (const [value, label] of [
      ['latest', 'run the latest missed time once'],
      ['all', 'run every missed time'],
      ['none', 'skip missed times']
    ]) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = label;
      this.catchup.appendChild(option);
    }
    this.preview.className = 'wb-Schedule-preview';
    this.preview.setAttribute('aria-label', 'The next five run times');
    this.preview.setAttribute('aria-live', 'polite');
    const when = row(
      'Cron schedule',
      this.cron,
      'minute hour day-of-month month day-of-week; empty: on demand only'
    );
    when.appendChild(this.preview);
    this.node.append(
      legend,
      row('Job name', this.name, 'saving again under this name updates the job'),
      when,
      row('Time zone', this.zone, 'an IANA name, such as America/New_York'),
      row('Retries', this.retries, 'times a failed run is tried again'),
      row('Timeout (seconds)', this.timeout, 'a run taking longer is stopped'),
      row('Runs at once', this.concurrency, 'at most this many of its runs at the same time'),
      row('When runs were missed', this.catchup, 'while no scheduler was running')
    );
    for (const box of [this.cron, this.zone]) {
      box.addEventListener('input', () => this.askLater());
    }
  }

  get isOpen(): boolean {
    return !this.node.hidden;
  }

  /** Show or hide the section; whether it is shown now. */
  toggle(): boolean {
    this.node.hidden = !this.node.hidden;
    if (this.isOpen) {
      this.cron.focus();
    }
    return this.isOpen;
  }

  /** An ISO time in the chosen zone, as a person reads it. */
  format(iso: string): string {
    return inZone(iso, this.zone.value.trim() || 'UTC', true);
  }

  private fail(box: HTMLElement, message: string): void {
    const error = box.parentElement?.querySelector('.wb-Form-error');
    if (error) {
      error.textContent = message;
    }
    box.classList.add('wb-mod-invalid');
  }

  private clear(): void {
    for (const error of this.node.querySelectorAll('.wb-Form-error')) {
      error.textContent = '';
    }
    for (const box of this.node.querySelectorAll('.wb-mod-invalid')) {
      box.classList.remove('wb-mod-invalid');
    }
  }

  /** The job's fields, or ``null`` after marking what is not a number where one is needed. */
  job(): IJobFields | null {
    this.clear();
    const retries = wholeNumber(this.retries.value, 0);
    const concurrency = wholeNumber(this.concurrency.value, 1);
    const timeout = this.timeout.value.trim() ? wholeNumber(this.timeout.value, 1) : undefined;
    let ok = true;
    if (!this.name.value.trim()) {
      this.fail(this.name, 'Give the job a name.');
      ok = false;
    }
    if (retries === null) {
      this.fail(this.retries, 'A whole number, 0 or more.');
      ok = false;
    }
    if (concurrency === null) {
      this.fail(this.concurrency, 'A whole number, 1 or more.');
      ok = false;
    }
    if (timeout === null) {
      this.fail(this.timeout, 'A whole number of seconds, or empty for no limit.');
      ok = false;
    }
    if (!ok) {
      return null;
    }
    const fields: IJobFields = {
      name: this.name.value.trim(),
      schedule: this.cron.value.trim(),
      timezone: this.zone.value.trim() || 'UTC',
      retries: retries!,
      max_concurrency: concurrency!,
      catchup: this.catchup.value
    };
    if (typeof timeout === 'number') {
      fields.timeout = timeout;
    }
    return fields;
  }

  private askLater(): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.ask(), PREVIEW_DELAY_MS);
  }

  private async ask(): Promise<void> {
    const cron = this.cron.value.trim();
    const zone = this.zone.value.trim() || 'UTC';
    const question = `${cron}|${zone}`;
    this.asked = question;
    this.preview.replaceChildren();
    this.cron.classList.remove('wb-mod-invalid');
    if (!cron) {
      return;
    }
    try {
      const answer = await request<{ next_runs: string[] }>(
        `schedule?cron=${encodeURIComponent(cron)}&timezone=${encodeURIComponent(zone)}`
      );
      if (this.asked !== question) {
        return; // typed on since
      }
      for (const time of answer.next_runs) {
        const item = document.createElement('li');
        item.textContent = this.format(time);
        item.dataset.time = time;
        this.preview.appendChild(item);
      }
    } catch (error) {
      if (this.asked !== question) {
        return;
      }
      const item = document.createElement('li');
      item.className = 'wb-Schedule-error';
      item.textContent = (error as ApiError).message;
      this.preview.appendChild(item);
      this.cron.classList.add('wb-mod-invalid');
    }
  }

  dispose(): void {
    window.clearTimeout(this.timer);
  }
}
