// Which part may import which: `npm run lint` fails on any import that
// breaks these rules. common/ is what both sides share; operator/ and
// proxy-pod/ never import each other (they talk over the admin API).
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'operator-not-into-proxy-pod',
      comment: 'The operator reaches the proxy through the admin API only; shared code lives in common/.',
      severity: 'error',
      from: { path: '^operator/', pathNot: '^operator/standalone\\.ts$' },
      to: { path: '^proxy-pod/' },
    },
    {
      name: 'standalone-checks-proxy-settings-only',
      comment:
        'The standalone mode forks the proxy process; it reads the proxy settings first only to refuse bad ones with a clear message.',
      severity: 'error',
      from: { path: '^operator/standalone\\.ts$' },
      to: { path: '^proxy-pod/', pathNot: '^proxy-pod/config\\.ts$' },
    },
    {
      name: 'proxy-pod-not-into-operator',
      comment: 'The data plane knows nothing of the control plane.',
      severity: 'error',
      from: { path: '^proxy-pod/' },
      to: { path: '^operator/' },
    },
    {
      name: 'common-imports-no-part',
      comment: 'common/ is below both parts.',
      severity: 'error',
      from: { path: '^common/' },
      to: { path: '^(operator|proxy-pod)/' },
    },
    {
      name: 'production-not-into-tests',
      severity: 'error',
      from: { path: '^(common|operator|proxy-pod)/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(node_modules|dist)/' },
  },
};
