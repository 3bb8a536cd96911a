/**
 * What the sidebar panels share: a heading bar, a list of one row per item, a line for messages
 * (what to do when the list is empty) and a refresh that asks the API again every few seconds
 * while the panel is shown. A refresh that finds nothing new leaves the list alone, so the
 * buttons under the mouse stay where they are.
 */
import { Widget } from '@lumino/widgets';

import { element } from './dom';

export interface IPanelOptions {
  id: string;
  /** The tab's label; the heading and the caption are "Workbench <label>". */
  label: string;
  /** How assistive technologies name the list. */
  listLabel: string;
  className: string;
  /** How often to ask again while shown; 0 asks only when shown or told. */
  refreshMs: number;
  /** What the panel says when it has nothing to list: what to do to get something. */
  empty: string;
}

export abstract class ListPanel<T> extends Widget {
  private readonly empty: string;
  protected readonly bar = element('div', 'wb-Runs-bar');
  protected readonly rows = element('ul', 'wb-Runs-list');
  protected readonly message = element('div', 'wb-Runs-message');
  private readonly refreshMs: number;
  private timer = 0;
  private shown = '';

  constructor(options: IPanelOptions) {
    super();
    this.id = options.id;
    this.addClass('wb-Runs');
    this.addClass(options.className);
    this.title.label = options.label;
    this.title.caption = `Workbench ${options.label.toLowerCase()}`;
    this.refreshMs = options.refreshMs;
    this.empty = options.empty;
    this.bar.append(element('h2', '', this.title.caption));
    this.rows.setAttribute('aria-label', options.listLabel);
    this.message.setAttribute('role', 'status');
  }

  /** Read what the panel lists from the API. */
  protected abstract fetch(): Promise<T[]>;

  /** One item's row of the list. */
  protected abstract row(item: T): HTMLLIElement;

  /** Show ``items``, a row each; called only when they differ from what is shown. */
  protected render(items: T[]): void {
    this.rows.replaceChildren(...items.map(item => this.row(item)));
    this.message.textContent = items.length ? '' : this.empty;
  }

  /** What decides whether a new answer differs from what is shown. */
  protected key(items: T[]): string {
    return JSON.stringify(items);
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  protected onAfterAttach(): void {
    if (this.isVisible) {
      void this.refresh(); // restored open with the page
    }
  }

  protected onBeforeHide(): void {
    window.clearTimeout(this.timer);
  }

  /** Ask the API again now, and again later while the panel is shown. */
  async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    try {
      const items = await this.fetch();
      const seen = this.key(items);
      if (seen !== this.shown) {
        this.shown = seen;
        this.render(items);
      }
    } catch (error) {
      this.message.textContent = (error as Error).message;
    }
    if (this.refreshMs && this.isVisible) {
      this.timer = window.setTimeout(() => void this.refresh(), this.refreshMs);
    }
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  /** Show the list again whatever it holds (a filter changed). */
  protected redraw(): Promise<void> {
    this.shown = '';
    return this.refresh();
  }
}
