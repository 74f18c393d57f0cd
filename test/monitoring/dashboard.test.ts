// The Grafana dashboard shipped in the chart (helm/cccp-proxy/dashboards/)
// conforms to Grafana's dashboard and panel schemas (@grafana/schema), and
// is laid out as Grafana expects. That its queries return data is proven
// against a real Prometheus in monitoring-prometheus.test.ts.
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dashboardSchemaErrors } from '../helpers/grafana-schema.ts';
import { type DashboardJson, dashboardFile } from '../helpers/monitoring.ts';

const test = suite('grafana dashboard');
const dashboard = JSON.parse(readFileSync(dashboardFile, 'utf8')) as DashboardJson;

test('the dashboard and every panel conform to the schema in @grafana/schema', () => {
  const errors = dashboardSchemaErrors(dashboard);
  assert.equal(errors, []);
});

test('the schema check refuses a misspelled key, a wrong type and a value outside an enum', () => {
  const copy = (): DashboardJson => JSON.parse(JSON.stringify(dashboard)) as DashboardJson;
  const misspelled = copy() as DashboardJson & { titel?: string };
  misspelled.titel = 'x';
  assert.ok(
    dashboardSchemaErrors(misspelled).some((e) => e.includes('titel')),
    'unknown dashboard key',
  );
  const wrongType = copy();
  (wrongType as { schemaVersion: unknown }).schemaVersion = '39';
  assert.ok(dashboardSchemaErrors(wrongType).length > 0, 'schemaVersion as a string');
  const badEnum = copy();
  const stat = badEnum.panels.find((p) => p.type === 'stat')!;
  (stat.options as Record<string, unknown>).colorMode = 'rainbow';
  assert.ok(
    dashboardSchemaErrors(badEnum).some((e) => e.includes('rainbow')),
    'stat colorMode outside its enum',
  );
});

test('panels have unique ids, fit the 24-column grid without overlapping, and use the datasource variable', () => {
  const ids = new Set<number>();
  const cells = new Set<string>();
  for (const panel of dashboard.panels) {
    assert.ok(!ids.has(panel.id), `duplicate panel id ${panel.id}`);
    ids.add(panel.id);
    const { x, y, w, h } = panel.gridPos;
    assert.ok(x >= 0 && w > 0 && x + w <= 24, `${panel.title} leaves the grid`);
    for (let row = y; row < y + h; row++) {
      for (let col = x; col < x + w; col++) {
        assert.ok(!cells.has(`${row}/${col}`), `${panel.title} overlaps another panel`);
        cells.add(`${row}/${col}`);
      }
    }
    if (panel.type === 'row') continue;
    // Grafana's own variable syntax, not a template literal.
    assert.equal(panel.datasource, { type: 'prometheus', uid: '$' + '{datasource}' }, panel.title);
    assert.ok(panel.targets.length > 0, `${panel.title} has no query`);
    assert.ok(panel.description, `${panel.title} has no description`);
  }
});

test('every query is scoped to the namespace variable, and every variable used is defined', () => {
  const defined = new Set(dashboard.templating.list.map((v) => v.name));
  for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) {
    for (const target of panel.targets) {
      assert.match(target.expr, 'namespace="$namespace"', panel.title);
      for (const [, name] of target.expr.matchAll(/\$(\w+)/g)) {
        assert.ok(name!.startsWith('__') || defined.has(name!), `${panel.title} uses undefined $${name}`);
      }
    }
  }
});

test.run();
