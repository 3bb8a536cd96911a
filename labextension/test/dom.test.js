// Times in a chosen zone, as the schedule preview and the Jobs panel show them (node --test).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { inZone } from '../lib/dom.js';

test('a time is shown in the chosen zone, with its name', () => {
  const shown = inZone('2026-12-07T11:30:00Z', 'America/New_York');
  assert.match(shown, /06:30/);
  assert.match(shown, /EST/);
  assert.doesNotMatch(shown, /2026/);
});

test('the long form adds the weekday and the year', () => {
  const shown = inZone('2026-12-07T11:30:00Z', 'Asia/Tokyo', true);
  assert.match(shown, /Mon/);
  assert.match(shown, /2026/);
  assert.match(shown, /(20|08):30/); // 24 or 12 hours, as the locale has it
});

test('no time is shown as nothing, and an unknown zone leaves the time as it came', () => {
  assert.equal(inZone(null, 'UTC'), '');
  assert.equal(inZone('2026-12-07T11:30:00Z', 'Mars/Olympus'), '2026-12-07T11:30:00Z');
});
