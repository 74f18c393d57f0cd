// The CRD schema and the TypeScript status type describe the same fields:
// a field added on one side only fails here.
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { STATUS_SCALAR_KINDS, STATUS_SCALARS } from '../../operator/session-store.ts';

const test = suite('CRD schema and status type');

interface SchemaNode {
  type?: string;
  enum?: string[];
  properties?: Record<string, SchemaNode>;
}

const crd = parse(readFileSync(new URL('../../crds/proxysession.yaml', import.meta.url), 'utf8')) as {
  spec: { versions: Array<{ schema: { openAPIV3Schema: SchemaNode } }> };
};
const statusSchema = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.status!.properties!;

test('every status field of the type is in the CRD, and nothing else but conditions', () => {
  assert.equal(Object.keys(statusSchema).sort(), [...STATUS_SCALARS, 'conditions'].sort());
});

test('each status field has the same kind of value in both', () => {
  for (const field of STATUS_SCALARS) {
    const kind = STATUS_SCALAR_KINDS[field];
    const node = statusSchema[field]!;
    if (typeof kind === 'string') {
      assert.is(node.type, kind, `${field}: type`);
      assert.is(node.enum, undefined, `${field}: no enum in the CRD for a free ${kind}`);
    } else {
      assert.is(node.type, 'string', `${field}: type`);
      assert.equal(node.enum, [...kind], `${field}: the CRD's enum is the type's list`);
    }
  }
});

test.run();
