/**
 * The run form's fields, from a notebook's typed parameters (the JSON Schema of
 * `GET /workbench/api/params`), and what the form sends back: the text a person typed, which
 * the server reads as `workbench run -p` does (`parameters_text`), so a wrong value is refused
 * there, in the same words as on the command line, and shown at its field.
 */

/** One property of the parameters' JSON Schema. */
export interface IParameterSchema {
  type?: string | string[];
  format?: string;
  enum?: unknown[];
  items?: IParameterSchema;
  default?: unknown;
  description?: string;
}

/** The parameters' JSON Schema as the API answers it. */
export interface IParametersSchema {
  properties: Record<string, IParameterSchema>;
  required?: string[];
  'x-workbench-secret-prefix'?: string;
}

/** How a field is shown: a text box, a checkbox, a date picker or a drop-down. */
export type FieldKind =
  | 'text'
  | 'integer'
  | 'number'
  | 'boolean'
  | 'date'
  | 'datetime'
  | 'choice'
  | 'list';

/** One field of the form. */
export interface IField {
  name: string;
  kind: FieldKind;
  /** A drop-down's values, as text ('' stands for none when the parameter is optional). */
  choices: string[];
  /** May be left as none. */
  nullable: boolean;
  /** Must be given (no default). */
  required: boolean;
  /** The default as the field shows it ('' for none). */
  initial: string;
  /** The parameter's description: the field's help text. */
  help: string;
  /** What the field's placeholder says. */
  placeholder: string;
  /** May take a stored secret (`secret:NAME`): a text parameter, typed as a string or not. */
  secret: boolean;
}

function types(schema: IParameterSchema): string[] {
  if (schema.type === undefined) {
    return [];
  }
  return Array.isArray(schema.type) ? schema.type : [schema.type];
}

function kindOf(schema: IParameterSchema): FieldKind {
  if (schema.enum !== undefined) {
    return 'choice';
  }
  const named = types(schema).filter(t => t !== 'null');
  const type = named.length === 1 ? named[0] : undefined;
  if (type === 'boolean') {
    return 'boolean';
  }
  if (type === 'integer') {
    return 'integer';
  }
  if (type === 'number') {
    return 'number';
  }
  if (type === 'array') {
    return 'list';
  }
  if (type === 'string' && schema.format === 'date') {
    return 'date';
  }
  if (type === 'string' && schema.format === 'date-time') {
    return 'datetime';
  }
  return 'text';
}

/** A value as the server reads typed text: lists with commas, none as empty. */
export function asText(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  if (Array.isArray(value)) {
    return value.map(asText).join(',');
  }
  if (typeof value === 'boolean') {
    return value ? 'yes' : 'no';
  }
  return String(value);
}

const PLACEHOLDERS: Record<FieldKind, string> = {
  text: 'text',
  integer: 'a whole number',
  number: 'a number',
  boolean: '',
  date: 'YYYY-MM-DD',
  datetime: 'YYYY-MM-DDTHH:MM',
  choice: '',
  list: 'values separated by commas'
};

/** The form's fields, in the notebook's order. */
export function fieldsFromSchema(schema: IParametersSchema): IField[] {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([name, property]) => {
    const kind = kindOf(property);
    const nullable =
      types(property).includes('null') || (property.enum ?? []).includes(null);
    const choices = (property.enum ?? []).filter(v => v !== null).map(asText);
    const initial = 'default' in property ? asText(property.default) : '';
    let placeholder = PLACEHOLDERS[kind];
    if (nullable && kind !== 'boolean') {
      placeholder = placeholder ? `${placeholder}, or empty for none` : 'empty for none';
    }
    const named = types(property).filter(t => t !== 'null');
    const secret = kind === 'text' && (named.length === 0 || named.includes('string'));
    return {
      name,
      kind,
      choices,
      nullable,
      required: required.has(name),
      initial,
      help: property.description ?? '',
      placeholder,
      secret
    };
  });
}

/**
 * What the form sends as `parameters_text`: each field the person changed from its default,
 * as typed; an optional field emptied is sent as `none`. Unchanged fields are left out, so the
 * notebook's own defaults apply.
 */
export function textValues(
  fields: IField[],
  typed: Record<string, string>
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const field of fields) {
    const value = typed[field.name];
    if (value === undefined || value === field.initial) {
      continue;
    }
    if (value === '') {
      if (field.nullable) {
        out[field.name] = 'none';
      }
      continue;
    }
    out[field.name] = value;
  }
  return out;
}

/** A job name from a notebook's path: its stem, in letters, digits and '_'. */
export function jobName(path: string): string {
  const stem = (path.split('/').pop() ?? path).replace(/\.ipynb$/, '');
  return stem.replace(/[^A-Za-z0-9_-]+/g, '_') || 'job';
}

/** The browser's own time zone (the default of the form). */
export function localZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** A whole number of at least ``minimum`` from typed text, or ``null``. */
export function wholeNumber(text: string, minimum: number): number | null {
  if (!/^\s*\d+\s*$/.test(text)) {
    return null;
  }
  const value = Number(text);
  return value >= minimum ? value : null;
}

/** A Python name for a table's frame: the table's name where it is an identifier. */
function frameName(table: string): string {
  const name = table.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[A-Za-z_]/.test(name) ? name : `t_${name}`;
}

/** A cell that reads ``table`` into a DataFrame. */
export function readSnippet(table: string): string {
  return `import workbench as wb\n\n${frameName(table)} = wb.read_table(${JSON.stringify(table)})\n${frameName(table)}.head()`;
}

/** What loads the `%%sql` magic; the Data panel puts it above the first such cell. */
export const LOAD_MAGICS = '%load_ext workbench';

/** A `%%sql` cell over ``table``'s first columns (double-quoted where they must be). */
export function sqlSnippet(table: string, columns: string[]): string {
  const quote = (name: string): string =>
    /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
  const shown = columns.length ? columns.slice(0, 6).map(quote).join(', ') : '*';
  return `%%sql\nSELECT ${shown}\nFROM ${quote(table)}\nLIMIT 10`;
}
