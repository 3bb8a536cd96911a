// The run form's fields from a parameter schema (node --test, on the compiled lib/).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { asText, fieldsFromSchema, textValues } from '../lib/form.js';

// The JSON Schema of GET /workbench/api/params for a notebook declaring one of each type.
const SCHEMA = {
  properties: {
    start: { type: 'string', format: 'date', default: '2013-01-01', description: 'first day' },
    at: { type: 'string', format: 'date-time' },
    carrier: { type: ['string', 'null'], default: null, description: 'one airline' },
    minutes: { type: 'integer', default: 15 },
    ratio: { type: 'number', default: 0.5 },
    strict: { type: 'boolean', default: false },
    airport: { enum: ['JFK', 'LGA', 'EWR'], default: 'JFK' },
    region: { enum: ['east', 'west', null], default: null },
    days: { type: 'array', items: { type: 'integer' }, default: [1, 2] },
    token: { type: 'string' },
    anything: {}
  },
  required: ['token', 'at']
};

const byName = () => Object.fromEntries(fieldsFromSchema(SCHEMA).map(f => [f.name, f]));

test('every parameter type gets its kind of field, in the order declared', () => {
  const fields = fieldsFromSchema(SCHEMA);
  assert.deepEqual(
    fields.map(f => [f.name, f.kind]),
    [
      ['start', 'date'],
      ['at', 'datetime'],
      ['carrier', 'text'],
      ['minutes', 'integer'],
      ['ratio', 'number'],
      ['strict', 'boolean'],
      ['airport', 'choice'],
      ['region', 'choice'],
      ['days', 'list'],
      ['token', 'text'],
      ['anything', 'text']
    ]
  );
});

test('choices are a drop-down of the declared values; none is offered only when optional', () => {
  const fields = byName();
  assert.deepEqual(fields.airport.choices, ['JFK', 'LGA', 'EWR']);
  assert.equal(fields.airport.nullable, false);
  assert.deepEqual(fields.region.choices, ['east', 'west']);
  assert.equal(fields.region.nullable, true);
});

test('defaults are shown as the server reads typed text', () => {
  const fields = byName();
  assert.equal(fields.start.initial, '2013-01-01');
  assert.equal(fields.minutes.initial, '15');
  assert.equal(fields.ratio.initial, '0.5');
  assert.equal(fields.strict.initial, 'no');
  assert.equal(fields.days.initial, '1,2');
  assert.equal(fields.carrier.initial, '');
  assert.equal(fields.token.initial, '');
  assert.equal(asText(true), 'yes');
  assert.equal(asText(['a', 'b']), 'a,b');
});

test('text parameters may take a stored secret; typed ones and choices may not', () => {
  const fields = byName();
  assert.equal(fields.token.secret, true);
  assert.equal(fields.carrier.secret, true); // str | None
  assert.equal(fields.anything.secret, true); // untyped
  for (const name of ['start', 'at', 'minutes', 'ratio', 'strict', 'airport', 'days']) {
    assert.equal(fields[name].secret, false, name);
  }
});

test('required, optional, help text and placeholders', () => {
  const fields = byName();
  assert.equal(fields.token.required, true);
  assert.equal(fields.at.required, true);
  assert.equal(fields.start.required, false);
  assert.equal(fields.carrier.nullable, true);
  assert.match(fields.carrier.placeholder, /empty for none/);
  assert.equal(fields.start.help, 'first day');
  assert.equal(fields.minutes.placeholder, 'a whole number');
  assert.equal(fields.days.placeholder, 'values separated by commas');
});

test('only what was changed is sent; an emptied optional field is none', () => {
  const fields = fieldsFromSchema(SCHEMA);
  const typed = {
    start: '2013-01-01', // the default: left to the notebook
    minutes: 'fifteen', // sent as typed: the server says what is wrong with it
    carrier: '', // the default (none): not sent
    region: '', // unchanged
    days: '3,4',
    token: 'secret:api_token',
    strict: 'yes'
  };
  assert.deepEqual(textValues(fields, typed), {
    minutes: 'fifteen',
    days: '3,4',
    token: 'secret:api_token',
    strict: 'yes'
  });
  const emptied = textValues(fieldsFromSchema({ properties: { c: { type: ['string', 'null'], default: 'AA' } } }), { c: '' });
  assert.deepEqual(emptied, { c: 'none' });
  const required = textValues(fieldsFromSchema({ properties: { n: { type: 'integer' } } }), { n: '' });
  assert.deepEqual(required, {}); // an empty required field is left for the server to name
});

test('a job is named after its notebook, and its numbers are whole', async () => {
  const { jobName, wholeNumber } = await import('../lib/form.js');
  assert.equal(jobName('notebooks/flights_kpis.ipynb'), 'flights_kpis');
  assert.equal(jobName('a b/c d.ipynb'), 'c_d');
  assert.equal(wholeNumber('3', 0), 3);
  assert.equal(wholeNumber(' 0 ', 0), 0);
  assert.equal(wholeNumber('0', 1), null);
  assert.equal(wholeNumber('1.5', 0), null);
  assert.equal(wholeNumber('-1', 0), null);
  assert.equal(wholeNumber('two', 0), null);
});

test('the Data panel inserts snippets that read a table, quoting what must be quoted', async () => {
  const { readSnippet, sqlSnippet } = await import('../lib/form.js');
  assert.equal(
    readSnippet('flights'),
    'import workbench as wb\n\nflights = wb.read_table("flights")\nflights.head()'
  );
  assert.match(readSnippet('2013-flights'), /^import workbench as wb\n\nt_2013_flights = wb\.read_table\("2013-flights"\)/);
  assert.equal(
    sqlSnippet('flights', ['year', 'month', 'Dep Time']),
    '%%sql\nSELECT year, month, "Dep Time"\nFROM flights\nLIMIT 10'
  );
  assert.equal(sqlSnippet('My "T"', []), '%%sql\nSELECT *\nFROM "My ""T"""\nLIMIT 10');
  const many = sqlSnippet('t', ['a', 'b', 'c', 'd', 'e', 'f', 'g']);
  assert.equal(many.split('\n')[1], 'SELECT a, b, c, d, e, f');
});
