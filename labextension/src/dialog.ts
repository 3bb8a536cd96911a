/**
 * "Run with Workbench": a dialog with a form built from the notebook's typed parameters.
 * "Run now" queues the run with what was typed; a refusal is shown at its field, in the
 * server's words; once queued, the dialog follows the run (cell i of n) and opens its output.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Widget } from '@lumino/widgets';

import { ApiError, IRun, post, progress, request } from './api';
import { element } from './dom';
import { ScheduleSection } from './schedule';
import { fieldsFromSchema, IField, IParametersSchema, textValues } from './form';
import { openOutput } from './output';
import { watch } from './watch';

const POLL_MS = 1000;
const FINISHED = new Set(['succeeded', 'failed', 'cancelled']);

function input(field: IField): HTMLInputElement | HTMLSelectElement {
  if (field.kind === 'choice' || field.kind === 'boolean') {
    const select = element('select', 'jp-mod-styled wb-Form-input');
    const options =
      field.kind === 'boolean'
        ? ['yes', 'no']
        : [...(field.nullable ? [''] : []), ...field.choices];
    for (const value of options) {
      const option = element('option', '', value || '(none)');
      option.value = value;
      select.appendChild(option);
    }
    select.value = field.initial;
    return select;
  }
  const box = element('input', 'jp-mod-styled wb-Form-input');
  box.type = field.kind === 'date' ? 'date' : 'text';
  box.value = field.initial;
  box.placeholder = field.placeholder;
  box.spellcheck = false;
  return box;
}

/** The dialog; resolves when it is closed. */
export class RunDialog extends Widget {
  private readonly inputs = new Map<string, HTMLInputElement | HTMLSelectElement>();
  private readonly errors = new Map<string, HTMLElement>();
  private readonly form = element('form', 'wb-Form');
  private readonly status = element('div', 'wb-Form-status');
  private readonly accept = element('button', 'jp-Dialog-button jp-mod-accept jp-mod-styled');
  private readonly scheduleButton = element('button', 'jp-Dialog-button jp-mod-styled');
  private readonly schedule: ScheduleSection;
  private fields: IField[] = [];
  private timer = 0;

  constructor(
    private readonly app: JupyterFrontEnd,
    private readonly path: string
  ) {
    super();
    this.addClass('jp-Dialog');
    this.addClass('jp-ThemedContainer');
    this.addClass('wb-RunDialog');
    this.node.setAttribute('role', 'dialog');
    this.node.setAttribute('aria-label', `Run ${path} with Workbench`);
    const content = element('div', 'jp-Dialog-content');
    const header = element('div', 'jp-Dialog-header', `Run ${path.split('/').pop()}`);
    const body = element('div', 'jp-Dialog-body');
    this.schedule = new ScheduleSection(path);
    const scroller = element('div', 'wb-RunDialog-scroll');
    scroller.append(this.form, this.schedule.node);
    body.append(scroller, this.status);
    const footer = element('div', 'jp-Dialog-footer');
    const cancel = element('button', 'jp-Dialog-button jp-mod-reject jp-mod-styled');
    cancel.append(element('div', 'jp-Dialog-buttonLabel', 'Close'));
    cancel.type = 'button';
    cancel.onclick = () => this.dispose();
    this.accept.append(element('div', 'jp-Dialog-buttonLabel', 'Run now'));
    this.accept.type = 'submit';
    this.accept.onclick = event => {
      event.preventDefault();
      void (this.schedule.isOpen ? this.saveSchedule() : this.runNow());
    };
    this.scheduleButton.type = 'button';
    this.scheduleButton.append(element('div', 'jp-Dialog-buttonLabel', 'Schedule…'));
    this.scheduleButton.onclick = () => this.toggleSchedule();
    footer.append(cancel, this.scheduleButton, this.accept);
    content.append(header, body, footer);
    this.node.appendChild(content);
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        this.dispose();
      }
    });
    this.form.onsubmit = event => {
      event.preventDefault();
      void (this.schedule.isOpen ? this.saveSchedule() : this.runNow());
    };
  }

  /** Show the dialog and load the notebook's parameters into its form. */
  async open(): Promise<void> {
    Widget.attach(this, document.body);
    this.status.textContent = 'Reading the notebook’s parameters…';
    try {
      const answer = await request<{ schema: IParametersSchema }>(
        `params?path=${encodeURIComponent(this.path)}`
      );
      const secrets = await request<{ secrets: { reference: string }[] }>('secrets').then(
        found => found.secrets.map(secret => secret.reference),
        () => [] as string[] // no list of names: a secret can still be typed
      );
      this.build(fieldsFromSchema(answer.schema), secrets);
      this.status.textContent = this.fields.length
        ? ''
        : 'This notebook declares no parameters: it runs as it is.';
    } catch (error) {
      this.status.textContent = (error as Error).message;
      this.accept.disabled = true;
    }
  }

  private build(fields: IField[], secrets: string[]): void {
    this.fields = fields;
    for (const field of fields) {
      const row = element('div', 'wb-Form-field');
      const id = `wb-param-${field.name}`;
      const label = element('label', 'wb-Form-label', field.name);
      label.htmlFor = id;
      if (field.required) {
        label.append(element('span', 'wb-Form-required', ' (required)'));
      }
      const box = input(field);
      box.id = id;
      box.name = field.name;
      const help = element('div', 'wb-Form-help', field.help);
      const error = element('div', 'wb-Form-error');
      error.setAttribute('role', 'alert');
      row.append(label, box);
      if (field.secret && secrets.length) {
        row.append(this.secretPicker(field, box, secrets));
      }
      row.append(help, error);
      this.form.appendChild(row);
      this.inputs.set(field.name, box);
      this.errors.set(field.name, error);
    }
    this.inputs.values().next().value?.focus();
  }

  /** A drop-down of the secrets this login may use, which puts `secret:NAME` in the field. */
  private secretPicker(
    field: IField,
    box: HTMLInputElement | HTMLSelectElement,
    secrets: string[]
  ): HTMLSelectElement {
    const picker = element('select', 'jp-mod-styled wb-Form-secret');
    picker.id = `wb-secret-${field.name}`;
    picker.setAttribute('aria-label', `Use a stored secret for ${field.name}`);
    const prompt = element('option', '', 'Use a stored secret…');
    prompt.value = '';
    picker.appendChild(prompt);
    for (const reference of secrets) {
      const option = element('option', '', reference);
      option.value = reference;
      picker.appendChild(option);
    }
    picker.onchange = () => {
      if (picker.value) {
        box.value = picker.value;
        picker.value = '';
      }
    };
    return picker;
  }

  private typed(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, box] of this.inputs) {
      out[name] = box.value;
    }
    return out;
  }

  private clearErrors(): void {
    for (const [name, error] of this.errors) {
      error.textContent = '';
      this.inputs.get(name)?.classList.remove('wb-mod-invalid');
    }
    this.status.textContent = '';
    delete this.status.dataset.status;
  }

  private setAccept(label: string): void {
    this.accept.replaceChildren(element('div', 'jp-Dialog-buttonLabel', label));
  }

  private toggleSchedule(): void {
    const open = this.schedule.toggle();
    this.setAccept(open ? 'Save schedule' : 'Run now');
    this.scheduleButton.replaceChildren(
      element('div', 'jp-Dialog-buttonLabel', open ? 'Run once instead' : 'Schedule…')
    );
    this.clearErrors();
  }

  private showRefusal(refused: ApiError): void {
    const at = (refused.parameters ?? []).filter(name => this.errors.has(name));
    for (const name of at) {
      this.errors.get(name)!.textContent = refused.message;
      this.inputs.get(name)?.classList.add('wb-mod-invalid');
    }
    if (at.length) {
      this.inputs.get(at[0])?.focus();
    } else {
      this.status.textContent = refused.message;
      this.status.dataset.status = 'refused';
    }
  }

  private async saveSchedule(): Promise<void> {
    this.clearErrors();
    const job = this.schedule.job();
    if (job === null) {
      return; // the section shows what to fix
    }
    this.accept.disabled = true;
    try {
      const saved = await post<{ name: string; next_runs: string[] }>('jobs', {
        ...job,
        notebook: this.path,
        parameters_text: textValues(this.fields, this.typed())
      });
      const next = saved.next_runs[0];
      this.status.textContent = `Saved as job ${saved.name}${
        next ? `: next run ${this.schedule.format(next)}` : ''
      }. It runs on the scheduler, whether or not JupyterLab is open.`;
      this.status.dataset.status = 'saved';
      this.saved?.();
    } catch (error) {
      this.showRefusal(error as ApiError);
    } finally {
      this.accept.disabled = false;
    }
  }

  /** Called when a job was saved (the Jobs panel reads its list again). */
  saved: (() => void) | null = null;

  private async runNow(): Promise<void> {
    this.clearErrors();
    this.accept.disabled = true;
    try {
      const queued = await post<{ id: string }>('runs', {
        notebook: this.path,
        parameters_text: textValues(this.fields, this.typed())
      });
      watch(this.app, queued.id); // a notification when it ends, dialog open or not
      this.follow(queued.id);
    } catch (error) {
      this.accept.disabled = false;
      this.showRefusal(error as ApiError);
    }
  }

  private follow(runId: string): void {
    this.form.classList.add('wb-mod-sent');
    this.scheduleButton.disabled = true;
    this.status.textContent = 'Queued: waiting for a scheduler to start it.';
    const check = async (): Promise<void> => {
      if (this.isDisposed) {
        return;
      }
      let run: IRun;
      try {
        run = await request<IRun>(`runs/${runId}`);
      } catch (error) {
        this.status.textContent = (error as Error).message;
        return;
      }
      if (run.status === 'running') {
        this.status.textContent = `Running: ${progress(run) || 'starting'}.`;
      } else if (run.status === 'succeeded') {
        this.status.textContent = 'Succeeded. Its output is open in a new tab.';
        openOutput(this.app, run.id, run.notebook);
      } else if (run.status === 'failed') {
        this.status.textContent = `Failed: ${run.error_name ?? 'an error'}${
          run.error_message ? ` (${run.error_message})` : ''
        }. Its output is open in a new tab.`;
        openOutput(this.app, run.id, run.notebook);
      } else if (run.status === 'cancelled') {
        this.status.textContent = 'Cancelled.';
      }
      this.status.dataset.status = run.status;
      if (!FINISHED.has(run.status)) {
        this.timer = window.setTimeout(() => void check(), POLL_MS);
      }
    };
    void check();
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    this.schedule.dispose();
    super.dispose();
  }
}
