// The one typed client for ProxySession resources. Everything untyped that
// the generated Kubernetes client returns is checked and converted here;
// nothing `any` leaves this file.

import { createHash } from 'node:crypto';
import { type ApiException, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, Watch } from '@kubernetes/client-node';
import {
  isOfKind,
  type ProxySessionSpec,
  type ProxySessionStatus,
  type SessionCondition,
  STATUS_SCALAR_KINDS,
  STATUS_SCALARS,
  type StatusScalars,
} from '../session-store.ts';

export const GROUP = 'cccp.tcxn.net';
export const VERSION = 'v1alpha1';
export const PLURAL = 'proxysessions';
export const KIND = 'ProxySession';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface ProxySessionMetadata {
  name: string;
  namespace: string;
  uid: string;
  resourceVersion: string;
  generation: number;
  creationTimestamp: string;
  deletionTimestamp?: string;
  finalizers: string[];
}

export interface ProxySessionResource {
  metadata: ProxySessionMetadata;
  spec: ProxySessionSpec;
  status: ProxySessionStatus;
}

/** A failed API call, with the HTTP status and the server's message. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }

  get notFound(): boolean {
    return this.status === 404;
  }

  get conflict(): boolean {
    return this.status === 409;
  }
}

/**
 * The resource name for a serial: readable, valid as a DNS-1123 name, and
 * distinct for serials that differ only in case or in characters a name
 * cannot hold (the hash decides).
 */
export function resourceNameForSerial(serial: string): string {
  const readable = serial
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40);
  const hash = createHash('sha256').update(serial).digest('hex').slice(0, 10);
  return readable ? `${readable}-${hash}` : `pxs-${hash}`;
}

export type WatchEvent =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: ProxySessionResource }
  | { type: 'BOOKMARK'; resourceVersion: string }
  | { type: 'ERROR'; status: number; message: string };

export interface WatchHandle {
  abort(): void;
}

export class ProxySessionClient {
  private readonly api: CustomObjectsApi;
  private readonly watcher: Watch;

  /** `fieldManager` names the writer in managedFields (the replica's identity). */
  constructor(
    kubeConfig: KubeConfig,
    readonly namespace: string,
    private readonly fieldManager = 'cccp-operator',
  ) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.watcher = new Watch(kubeConfig);
  }

  private get target() {
    return { group: GROUP, version: VERSION, namespace: this.namespace, plural: PLURAL };
  }

  async get(name: string): Promise<ProxySessionResource | undefined> {
    try {
      return toResource(await this.api.getNamespacedCustomObject({ ...this.target, name }));
    } catch (err) {
      const failure = toKubeError(err);
      if (failure.notFound) return undefined;
      throw failure;
    }
  }

  async list(): Promise<{ items: ProxySessionResource[]; resourceVersion: string }> {
    const list = await call(() => this.api.listNamespacedCustomObject({ ...this.target }));
    const record = asRecord(list, 'list');
    const items = Array.isArray(record.items) ? record.items.map(toResource) : [];
    return { items, resourceVersion: String(asRecord(record.metadata ?? {}, 'list metadata').resourceVersion ?? '') };
  }

  async create(name: string, spec: ProxySessionSpec, finalizers: string[]): Promise<ProxySessionResource> {
    const body = {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name, finalizers, labels: { 'app.kubernetes.io/managed-by': 'cccp-operator' } },
      spec,
    };
    return toResource(await call(() => this.api.createNamespacedCustomObject({ ...this.target, body, fieldManager: this.fieldManager })));
  }

  /**
   * Merge-patches the spec. `uid` makes the patch fail with 409 if the name
   * now belongs to another incarnation.
   */
  async patchSpec(name: string, uid: string, spec: ProxySessionSpec): Promise<ProxySessionResource> {
    const body = {
      metadata: { uid },
      spec: {
        ...spec,
        timeoutSeconds: spec.timeoutSeconds ?? null,
        maxLifetimeSeconds: spec.maxLifetimeSeconds ?? null,
        idleTimeoutSeconds: spec.idleTimeoutSeconds ?? null,
      },
    };
    return toResource(
      await call(() => this.api.patchNamespacedCustomObject({ ...this.target, name, body, fieldManager: this.fieldManager }, mergePatch)),
    );
  }

  /** Sets the finalizers, guarded by resourceVersion so no one else's change is lost. */
  async patchFinalizers(name: string, resourceVersion: string, finalizers: string[]): Promise<ProxySessionResource> {
    const body = { metadata: { resourceVersion, finalizers } };
    return toResource(
      await call(() => this.api.patchNamespacedCustomObject({ ...this.target, name, body, fieldManager: this.fieldManager }, mergePatch)),
    );
  }

  /** Replaces the status (fields absent from `status` are removed), for that uid only. */
  async replaceStatus(name: string, uid: string, status: ProxySessionStatus): Promise<ProxySessionResource> {
    const cleared = Object.fromEntries(STATUS_FIELDS.map((field) => [field, null]));
    const body = { metadata: { uid }, status: { ...cleared, ...status } };
    return toResource(
      await call(() =>
        this.api.patchNamespacedCustomObjectStatus({ ...this.target, name, body, fieldManager: this.fieldManager }, mergePatch),
      ),
    );
  }

  /**
   * Deletes that incarnation. While finalizers hold it, the answer carries the
   * object as it is now (marked for deletion).
   */
  async delete(
    name: string,
    uid: string,
  ): Promise<{ outcome: 'deleted' | 'not-found' } | { outcome: 'deleting'; object: ProxySessionResource }> {
    try {
      const result = await this.api.deleteNamespacedCustomObject({ ...this.target, name, body: { preconditions: { uid } } });
      const record = asRecord(result, 'delete answer');
      // The API answers with the object while finalizers hold it, else a Status.
      if (record.kind === KIND && asRecord(record.metadata ?? {}, 'metadata').deletionTimestamp)
        return { outcome: 'deleting', object: toResource(record) };
      return { outcome: 'deleted' };
    } catch (err) {
      const failure = toKubeError(err);
      // 409: the uid precondition failed, the name holds another incarnation.
      if (failure.notFound || failure.conflict) return { outcome: 'not-found' };
      throw failure;
    }
  }

  /** Watches from resourceVersion; `done` is called once when the watch ends for any reason. */
  async watch(resourceVersion: string, onEvent: (event: WatchEvent) => void, done: (err?: Error) => void): Promise<WatchHandle> {
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${this.namespace}/${PLURAL}`;
    let finished = false;
    const finish = (err?: unknown) => {
      if (finished) return;
      finished = true;
      done(err ? toKubeError(err) : undefined);
    };
    const controller = await this.watcher.watch(
      path,
      { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
      (type: string, object: unknown) => {
        try {
          if (type === 'BOOKMARK')
            onEvent({ type, resourceVersion: String(asRecord(asRecord(object, 'bookmark').metadata, 'metadata').resourceVersion) });
          else if (type === 'ERROR') {
            const status = asRecord(object, 'watch error');
            onEvent({ type, status: Number(status.code ?? 500), message: String(status.message ?? 'watch error') });
          } else if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') onEvent({ type, object: toResource(object) });
        } catch (err) {
          finish(err);
        }
      },
      finish,
    );
    return { abort: () => controller.abort() };
  }
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const STATUS_FIELDS: Array<keyof ProxySessionStatus> = [...STATUS_SCALARS, 'conditions'];

async function call<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (err) {
    throw toKubeError(err);
  }
}

export function toKubeError(err: unknown): KubeApiError {
  if (err instanceof KubeApiError) return err;
  const api = err as Partial<ApiException<unknown>> & { message?: string };
  if (typeof api?.code === 'number') {
    let message = api.message ?? `HTTP ${api.code}`;
    let reason: string | undefined;
    try {
      const body = typeof api.body === 'string' ? JSON.parse(api.body) : api.body;
      if (body && typeof body.message === 'string') message = body.message;
      if (body && typeof body.reason === 'string') reason = body.reason;
    } catch {}
    return new KubeApiError(api.code, message, reason);
  }
  return new KubeApiError(0, err instanceof Error ? err.message : String(err));
}

function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new KubeApiError(0, `malformed ${what} from the API server`);
  return value as Record<string, unknown>;
}

const optional = <T>(value: unknown, check: (v: unknown) => v is T): T | undefined => (check(value) ? value : undefined);
const isString = (v: unknown): v is string => typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Checks and converts one object from the API server. */
export function toResource(value: unknown): ProxySessionResource {
  const object = asRecord(value, 'ProxySession');
  const metadata = asRecord(object.metadata, 'metadata');
  const spec = asRecord(object.spec ?? {}, 'spec');
  const status = asRecord(object.status ?? {}, 'status');
  if (!isString(metadata.name) || !isString(metadata.uid) || !isString(spec.serial)) {
    throw new KubeApiError(0, 'ProxySession without name, uid or spec.serial');
  }
  const whitelist = Array.isArray(spec.ipWhitelist) ? spec.ipWhitelist.filter(isString) : [];
  const timeoutSeconds = optional(spec.timeoutSeconds, isNumber);
  const maxLifetimeSeconds = optional(spec.maxLifetimeSeconds, isNumber);
  const idleTimeoutSeconds = optional(spec.idleTimeoutSeconds, isNumber);
  return {
    metadata: {
      name: metadata.name,
      namespace: String(metadata.namespace ?? ''),
      uid: metadata.uid,
      resourceVersion: String(metadata.resourceVersion ?? ''),
      generation: optional(metadata.generation, isNumber) ?? 1,
      creationTimestamp: String(metadata.creationTimestamp ?? ''),
      ...(isString(metadata.deletionTimestamp) ? { deletionTimestamp: metadata.deletionTimestamp } : {}),
      finalizers: Array.isArray(metadata.finalizers) ? metadata.finalizers.filter(isString) : [],
    },
    spec: {
      serial: spec.serial,
      persistent: spec.persistent === true,
      ipWhitelist: whitelist,
      ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
      ...(maxLifetimeSeconds !== undefined ? { maxLifetimeSeconds } : {}),
      ...(idleTimeoutSeconds !== undefined ? { idleTimeoutSeconds } : {}),
    },
    status: toStatus(status),
  };
}

function toStatus(status: Record<string, unknown>): ProxySessionStatus {
  const result: ProxySessionStatus = {};
  // What the schema's kind does not admit is left out, as if absent.
  const scalars = result as Record<keyof StatusScalars, unknown>;
  for (const field of STATUS_SCALARS) {
    if (isOfKind(STATUS_SCALAR_KINDS[field], status[field])) scalars[field] = status[field];
  }
  if (Array.isArray(status.conditions)) {
    result.conditions = status.conditions.flatMap((c): SessionCondition[] => {
      const condition = typeof c === 'object' && c !== null ? (c as Record<string, unknown>) : {};
      if (!isString(condition.type) || !isString(condition.status)) return [];
      return [
        {
          type: condition.type,
          status: condition.status as SessionCondition['status'],
          reason: String(condition.reason ?? ''),
          message: String(condition.message ?? ''),
          lastTransitionTime: String(condition.lastTransitionTime ?? ''),
          ...(isNumber(condition.observedGeneration) ? { observedGeneration: condition.observedGeneration } : {}),
        },
      ];
    });
  }
  return result;
}
