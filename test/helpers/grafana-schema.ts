// Checks a Grafana dashboard JSON against Grafana's own schema as the
// @grafana/schema package ships it: TypeScript types generated from the
// dashboard kind and from each panel plugin's options. The JSON is written
// into an in-memory TypeScript file as object literals typed with those types
// and compiled, so unknown keys, missing required fields, wrong types and
// values outside an enum are compile errors.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** The schema types of the panel plugins the dashboard uses: options, and fieldConfig.defaults.custom. */
const PANEL_SCHEMAS: Record<string, { module: string; custom: boolean }> = {
  timeseries: { module: '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen', custom: true },
  stat: { module: '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen', custom: false },
};

interface PanelJson {
  type: string;
  title?: string;
  options?: unknown;
  fieldConfig?: { defaults?: { custom?: unknown } };
}

/** Compile errors of the dashboard against the schema; empty when it conforms. */
export function dashboardSchemaErrors(dashboard: { panels?: PanelJson[] }): string[] {
  const lines = [
    `import type { Dashboard } from '@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen';`,
    ...Object.entries(PANEL_SCHEMAS).map(([type, schema]) => `import type * as ${type} from '${schema.module}';`),
    // The generated types use TypeScript enums; JSON holds their values.
    `type Json<T> = T extends string ? \`\${T}\` : T extends number | boolean | null | undefined ? T : T extends Array<infer U> ? Array<Json<U>> : T extends object ? { [K in keyof T]: Json<T[K]> } : T;`,
    `export const dashboard: Json<Dashboard> = ${JSON.stringify(dashboard, null, 2)};`,
  ];
  const errors: string[] = [];
  for (const [index, panel] of (dashboard.panels ?? []).entries()) {
    if (panel.type === 'row') continue;
    const schema = PANEL_SCHEMAS[panel.type];
    if (!schema) {
      errors.push(`panel ${index} "${panel.title}": no schema known for panel type ${panel.type}`);
      continue;
    }
    lines.push(`export const options${index}: Json<${panel.type}.Options> = ${JSON.stringify(panel.options ?? {})};`);
    if (schema.custom)
      lines.push(
        `export const custom${index}: Json<${panel.type}.FieldConfig> = ${JSON.stringify(panel.fieldConfig?.defaults?.custom ?? {})};`,
      );
  }
  return [...errors, ...compileErrors(lines.join('\n'))];
}

function compileErrors(source: string): string[] {
  // Inside the repository, so that node_modules resolves as for any test file.
  const file = join(root, 'test', '__dashboard-schema-check.ts');
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, languageVersion, ...rest) =>
    name === file ? ts.createSourceFile(name, source, languageVersion) : getSourceFile(name, languageVersion, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    return where && d.file === program.getSourceFile(file)
      ? `line ${where.line + 1}: ${text}`
      : `${d.file?.fileName ?? dirname(file)}: ${text}`;
  });
}
