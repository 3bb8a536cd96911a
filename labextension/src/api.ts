/**
 * The Workbench REST API of the Jupyter server (`/workbench/api/`), through the server's own
 * connection settings: its sign-in and XSRF token.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A refusal of the API: its message, and the parameters it is about (a form's fields). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly parameters: string[] = []
  ) {
    super(message);
  }
}

/** A run as the API lists it. */
export interface IRun {
  id: string;
  notebook: string;
  status: string;
  queued_at: string | null;
  started_at: string | null;
  finished_at: string | null;
  progress_cell: number | null;
  progress_total: number | null;
  triggered_by: string | null;
  error_name: string | null;
  /** The failing cell, numbered as JupyterLab shows the notebook (from 1). */
  error_cell: number | null;
  error_message?: string | null;
  /** The notebook relative to the server's folder; null when it is elsewhere. */
  path: string | null;
}

/** Who the server is signed in as, and in which mode. */
export interface IWhoami {
  user: string | null;
  mode: 'embedded' | 'team';
  database: string;
  login: string | null;
  version: string;
}

let whoami: Promise<IWhoami> | null = null;

/** The server's answer to `whoami`, asked once per page. */
export function signedIn(): Promise<IWhoami> {
  whoami ??= request<IWhoami>('whoami');
  whoami.catch(() => (whoami = null));
  return whoami;
}

const settings = ServerConnection.makeSettings();

/** The URL of ``path`` under the API. */
export function apiUrl(path: string): string {
  return URLExt.join(settings.baseUrl, 'workbench/api', path);
}

/** A JSON request to the API; an {@link ApiError} with the server's message when refused. */
export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await ServerConnection.makeRequest(apiUrl(path), init, settings);
  let body: any = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  if (!response.ok) {
    throw new ApiError(
      body.message ?? `The Workbench API answered ${response.status}.`,
      response.status,
      body.parameters ?? []
    );
  }
  return body as T;
}

/** POST ``body`` as JSON. */
export function post<T>(path: string, body: unknown): Promise<T> {
  return request<T>(path, { method: 'POST', body: JSON.stringify(body) });
}

/** How long a run took, or has been running, in words. */
export function took(run: IRun, now: number = Date.now()): string {
  if (!run.started_at) {
    return '';
  }
  const end = run.finished_at ? Date.parse(run.finished_at) : now;
  const seconds = Math.max(0, (end - Date.parse(run.started_at)) / 1000);
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.round(seconds / 60)} min`;
}

/** "cell i of n" while a run executes. */
export function progress(run: IRun): string {
  if (run.status !== 'running' || !run.progress_total) {
    return '';
  }
  return `cell ${run.progress_cell ?? 0} of ${run.progress_total}`;
}
