/** The few DOM builders every panel and the dialog share. */

/** A ``tag`` element of ``className`` holding ``text``. */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text) {
    node.textContent = text;
  }
  return node;
}

/** A span of text. */
export function span(text: string, className: string): HTMLSpanElement {
  return element('span', className, text);
}

/** A minimal JupyterLab button of a panel's row, ``title`` its tooltip. */
export function button(label: string, title: string, onclick: () => void): HTMLButtonElement {
  const node = element('button', 'jp-Button jp-mod-minimal wb-Runs-action', label);
  node.title = title;
  node.onclick = onclick;
  return node;
}

/** An ISO time in ``zone`` as a person reads it; ``long`` adds the weekday and the year. */
export function inZone(iso: string | null, zone: string, long = false): string {
  if (!iso) {
    return '';
  }
  const parts: Intl.DateTimeFormatOptions = {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    timeZoneName: 'short'
  };
  try {
    return new Date(iso).toLocaleString(
      undefined,
      long ? { ...parts, timeZone: zone, weekday: 'short', year: 'numeric' } : { ...parts, timeZone: zone }
    );
  } catch {
    return iso;
  }
}
