// Throw-away credentials for one test rig: a CA, the apiserver's serving
// certificate, an admin client certificate and the service-account token
// signing key. node:crypto cannot issue X.509 certificates, so those come from
// the openssl CLI; keys are P-256, which is quick to generate.
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Pki {
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** Client certificate in group system:masters: the rig's cluster-admin. */
  adminCert: string;
  adminKey: string;
  serviceAccountPublicKey: string;
  serviceAccountPrivateKey: string;
}

const opensslConfig = (serverNames: string) => `
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${serverNames}
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
`;

// The certificates only need to outlive one test run.
const validDays = '2';
const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * serverNames: the apiserver certificate's subjectAltName (the test node adds
 * its own address and the in-cluster names of the "kubernetes" Service).
 */
export async function createPki(dir: string, serverNames = 'IP:127.0.0.1,DNS:localhost'): Promise<Pki> {
  const config = join(dir, 'openssl.cnf');
  writeFileSync(config, opensslConfig(serverNames));
  const file = (name: string) => join(dir, name);

  await openssl([
    'req',
    '-x509',
    '-new',
    '-config',
    config,
    '-extensions',
    'ca',
    ...newKey,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    validDays,
    '-subj',
    '/CN=cccp-test-rig-ca',
  ]);
  await issue(dir, config, 'server', 'server', '/CN=kube-apiserver');
  await issue(dir, config, 'admin', 'client', '/O=system:masters/CN=cccp-test-rig-admin');

  const sa = generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  writeFileSync(file('sa.pub'), sa.publicKey);
  writeFileSync(file('sa.key'), sa.privateKey, { mode: 0o600 });

  return {
    caCert: file('ca.crt'),
    serverCert: file('server.crt'),
    serverKey: file('server.key'),
    adminCert: file('admin.crt'),
    adminKey: file('admin.key'),
    serviceAccountPublicKey: file('sa.pub'),
    serviceAccountPrivateKey: file('sa.key'),
  };
}

/** A key and a certificate for it signed by the rig's CA. */
async function issue(dir: string, config: string, name: string, extensions: string, subject: string): Promise<void> {
  const file = (suffix: string) => join(dir, `${name}.${suffix}`);
  await openssl(['req', '-new', '-config', config, ...newKey, '-keyout', file('key'), '-out', file('csr'), '-subj', subject]);
  await openssl([
    'x509',
    '-req',
    '-in',
    file('csr'),
    '-CA',
    join(dir, 'ca.crt'),
    '-CAkey',
    join(dir, 'ca.key'),
    '-set_serial',
    `0x${randomBytes(12).toString('hex')}`,
    '-days',
    validDays,
    '-extfile',
    config,
    '-extensions',
    extensions,
    '-out',
    file('crt'),
  ]);
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed (is the openssl CLI installed?): ${stderr.trim()}`, { cause: err });
  }
}
