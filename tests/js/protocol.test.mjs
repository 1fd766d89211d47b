// The console's card rule (web/js/protocol.js) against the fixtures screenpop/protocol.py is tested on.
// Run by tests/unit/test_protocol.py (`node --test`), so `make test` runs it.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

import * as protocol from "../../web/js/protocol.js";

const BUILDERS = { wrapup: protocol.wrapupRequest, "wrapup.draft": protocol.draftRequest, select: protocol.selectRequest };

const dir = new URL("../fixtures/protocol/", import.meta.url);

for (const file of readdirSync(dir).filter((f) => f.endsWith(".json")).sort()) {
  const fixture = JSON.parse(readFileSync(new URL(file, dir), "utf8"));
  test(`${file}: ${fixture.description}`, () => {
    let card = null;
    for (const message of fixture.messages) card = protocol.applyMessage(card, structuredClone(message));
    assert.deepEqual(card, fixture.card);
    for (const { build, args, message } of fixture.requests || []) {
      assert.deepEqual(BUILDERS[build](...args), message);
    }
  });
}
