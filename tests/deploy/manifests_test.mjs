// The Kubernetes manifests of k8s/, checked offline:
//  1. every overlay renders (`kubectl kustomize`);
//  2. every rendered object validates against its schema: Kubernetes'
//     (kubernetes-models), cert-manager's, the Prometheus Operator's,
//     CloudNativePG's and external-secrets' (@kubernetes-models/*);
//  3. our policies hold (the `checks` below, each with an id);
//  4. each policy can fail: a copy of the rendered objects is broken one way
//     per check and that check must report it.
//   node tests/deploy/manifests_test.mjs
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const graph = JSON.parse(readFileSync(join(root, "deploy", "call-graph.json"), "utf8")).services;
const SERVICES = Object.keys(graph);
// The datastores: their port, and the CloudNativePG cluster of each PostgreSQL.
const STORE_PORTS = { postgres: 5432, "postgres-erasure": 5432, redis: 6379 };
const CNPG_CLUSTERS = { "crm-postgres": "postgres", "crm-postgres-erasure": "postgres-erasure" };
// Edges of the datastores with themselves (replication, CloudNativePG's
// instance manager): allowed besides the call graph.
const STORE_SELF_EDGES = ["postgres->postgres:5432", "postgres->postgres:8000",
  "postgres-erasure->postgres-erasure:5432", "postgres-erasure->postgres-erasure:8000", "redis->redis:6379"];
// Secrets neither tools/k8s-secrets nor the cluster's operators make.
const BROUGHT_BY_OPERATOR = { "gateway-public-tls": ["tls.crt", "tls.key"] };
const CNPG_SECRETS = Object.fromEntries(Object.keys(CNPG_CLUSTERS).map((c) => [`${c}-ca`, ["ca.crt", "ca.key"]]));

function parseYaml(text, what) {
  return parseAllDocuments(text).map((d) => {
    if (d.errors.length > 0) throw new Error(`${what}: ${d.errors[0].message}`);
    return d.toJS();
  }).filter((o) => o !== null && o !== undefined);
}

function kustomize(dir) {
  const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`kubectl: ${r.error.message} (tools/dev deps installs kubernetes-client)`);
  if (r.status !== 0) throw new Error(`kubectl kustomize ${relative(root, dir)}: ${r.stderr}`);
  return parseYaml(r.stdout, relative(root, dir));
}

// ---------------------------------------------------------------- schemas
const MODEL_PACKAGES = {
  "cert-manager.io": "@kubernetes-models/cert-manager/cert-manager.io",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator/monitoring.coreos.com",
  "postgresql.cnpg.io": "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io",
  "external-secrets.io": "@kubernetes-models/external-secrets/external-secrets.io",
};
async function validateSchema(obj) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const base = group === "" ? "kubernetes-models" : (MODEL_PACKAGES[group] ?? `kubernetes-models/${group}`);
  const path = `${base}/${version}/${obj.kind}`;
  let mod;
  try {
    mod = await import(path);
  } catch {
    return `no schema for ${obj.apiVersion} ${obj.kind}`;
  }
  try {
    new mod[obj.kind](obj).validate();
    return null;
  } catch (e) {
    return e.message.split("\n").slice(0, 3).join("; ");
  }
}

// ---------------------------------------------------------------- helpers
const named = (docs, kind, name) => docs.find((o) => o.kind === kind && o.metadata?.name === name);
const ofKind = (docs, ...kinds) => docs.filter((o) => kinds.includes(o.kind));
const podSpecs = (docs) => ofKind(docs, "Deployment", "StatefulSet").map((w) => ({ w, pod: w.spec.template.spec }));
const appName = (labels) => labels?.["app.kubernetes.io/name"] ?? CNPG_CLUSTERS[labels?.["cnpg.io/cluster"]];

function seconds(d) {
  if (d === undefined || d === "" || d === "0") return 0;
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let m;
  let consumed = "";
  while ((m = re.exec(d)) !== null) {
    total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
    consumed += m[0];
  }
  if (consumed !== d) throw new Error(`not a duration: ${d}`);
  return total;
}

// The settings a container starts with: its ConfigMaps (envFrom), then env.
function settingsOf(docs, container) {
  const env = {};
  for (const from of container.envFrom ?? []) {
    const cm = from.configMapRef && named(docs, "ConfigMap", from.configMapRef.name);
    Object.assign(env, cm?.data ?? {});
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.configMapKeyRef) {
      const r = e.valueFrom.configMapKeyRef;
      env[e.name] = named(docs, "ConfigMap", r.name)?.data?.[r.key];
    } else env[e.name] = "<secret>";
  }
  return env;
}

// The services an address setting names: "dns:///audit:50054", "audit=dns:///audit:50054,...".
function addressedServices(env) {
  const out = [];
  for (const [k, v] of Object.entries(env)) {
    if (!/^CRM_[A-Z_]+_ADDR$|^CRM_TARGETS$|^CRM_SERVICES$/.test(k) || k === "CRM_REDIS_ADDR") continue;
    for (const entry of String(v).split(",")) {
      const addr = entry.includes("=") ? entry.slice(entry.indexOf("=") + 1) : entry;
      const m = /^(?:dns:\/\/\/)?([a-z0-9.-]+):(\d+)$/.exec(addr.trim());
      out.push(m ? { setting: k, name: m[1].split(".")[0], port: Number(m[2]) } : { setting: k, bad: addr });
    }
  }
  return out;
}

function expectedEdges() {
  const e = new Set(STORE_SELF_EDGES);
  for (const [s, d] of Object.entries(graph)) {
    for (const c of d.calls) e.add(`${s}->${c}:${graph[c].port}`);
    for (const st of d.stores) e.add(`${s}->${st}:${STORE_PORTS[st]}`);
  }
  return e;
}

// Edges between the suite's pods the NetworkPolicies allow, seen from the
// receiving side (ingress) and from the sending side (egress).
function policyEdges(docs) {
  const ingress = new Set();
  const egress = new Set();
  for (const p of ofKind(docs, "NetworkPolicy")) {
    const self = appName(p.spec.podSelector?.matchLabels);
    if (!self) continue;
    for (const rule of p.spec.ingress ?? []) {
      for (const peer of rule.from ?? []) {
        const other = !peer.namespaceSelector && appName(peer.podSelector?.matchLabels);
        if (other) for (const port of rule.ports ?? []) ingress.add(`${other}->${self}:${port.port}`);
      }
    }
    for (const rule of p.spec.egress ?? []) {
      for (const peer of rule.to ?? []) {
        const other = !peer.namespaceSelector && appName(peer.podSelector?.matchLabels);
        if (other) for (const port of rule.ports ?? []) egress.add(`${self}->${other}:${port.port}`);
      }
    }
  }
  return { ingress, egress };
}

const setDiff = (a, b) => [...a].filter((x) => !b.has(x));

// Secrets tools/k8s-secrets makes, with their keys (every option on).
function generatedSecrets() {
  const dir = mkdtempSync(join(tmpdir(), "crm-k8s-secrets-"));
  const file = join(dir, "password");
  writeFileSync(file, "not-a-real-password\n");
  const r = spawnSync(join(root, "tools", "k8s-secrets"),
    ["--smtp-password-file", file, "--backup-s3-key-id", "x", "--backup-s3-secret-file", file],
    { encoding: "utf8" });
  rmSync(dir, { recursive: true });
  if (r.status !== 0) throw new Error(`tools/k8s-secrets: ${r.stderr}`);
  return parseYaml(r.stdout, "tools/k8s-secrets");
}

// Every file under dir (skipping node_modules), as [path, text].
function filesUnder(dir) {
  const out = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (e === "node_modules") continue;
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push([p, readFileSync(p, "utf8")]);
  }
  return out;
}

// The CRM_* settings a program knows, from its --help (the test build's
// binaries: CRMTEST_BINARY_DIR, else build/).
const knownSettings = {};
function settingsKnownBy(service) {
  if (knownSettings[service]) return knownSettings[service];
  const bin = join(process.env.CRMTEST_BINARY_DIR ?? join(root, "build"), "services", service, `crm-${service}`);
  const r = spawnSync(bin, ["--help"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${bin} --help: ${r.error?.message ?? r.stderr} (build it first)`);
  knownSettings[service] = new Set([...r.stdout.matchAll(/\((CRM_[A-Z0-9_]+),/g)].map((m) => m[1]));
  if (knownSettings[service].size < 5) throw new Error(`${bin} --help lists no settings`);
  return knownSettings[service];
}

// Metric names in our C++ code: string literals "crm_..." in the sources and
// headers (prometheus .Name("..."), or a constant a Collectable uses).
let metricNames = null;
function registeredMetrics() {
  if (metricNames) return metricNames;
  metricNames = new Set();
  for (const dir of ["libs", "services"]) {
    for (const [p, text] of filesUnder(join(root, dir))) {
      if (!/\.(cc|h)$/.test(p) || p.endsWith("_test.cc")) continue;
      for (const m of text.matchAll(/"(crm_[a-z0-9_]+)"/g)) metricNames.add(m[1]);
    }
  }
  return metricNames;
}

// ---------------------------------------------------------------- checks
// Each: [id, what it asks, (docs, ctx) => [problem...]]; ctx = {overlay, secrets}.
const checks = [
  ["pods-secure", "every pod non-root with seccomp RuntimeDefault; every container without privilege escalation, capabilities or a writable root", (docs) => {
    const bad = [];
    for (const { w, pod } of podSpecs(docs)) {
      const psc = pod.securityContext ?? {};
      for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
        const sc = c.securityContext ?? {};
        const where = `${w.kind}/${w.metadata.name}/${c.name}`;
        if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) bad.push(`${where}: runAsNonRoot`);
        if ((sc.runAsUser ?? psc.runAsUser) === 0) bad.push(`${where}: runAsUser 0`);
        if ((sc.seccompProfile ?? psc.seccompProfile)?.type !== "RuntimeDefault") bad.push(`${where}: seccomp`);
        if (sc.allowPrivilegeEscalation !== false) bad.push(`${where}: allowPrivilegeEscalation`);
        if (sc.readOnlyRootFilesystem !== true) bad.push(`${where}: readOnlyRootFilesystem`);
        if (!(sc.capabilities?.drop ?? []).includes("ALL")) bad.push(`${where}: capabilities.drop ALL`);
        if (sc.privileged) bad.push(`${where}: privileged`);
      }
      if (pod.automountServiceAccountToken !== false) bad.push(`${w.metadata.name}: automountServiceAccountToken`);
      if (pod.hostNetwork || pod.hostPID || pod.hostIPC) bad.push(`${w.metadata.name}: host namespaces`);
    }
    return bad;
  }],
  ["pods-resources-probes", "every container has requests and limits of cpu and memory, a readiness and a liveness probe, and a pinned image", (docs) => {
    const bad = [];
    for (const { w, pod } of podSpecs(docs)) {
      for (const c of pod.containers) {
        const where = `${w.metadata.name}/${c.name}`;
        for (const k of ["requests", "limits"]) {
          for (const r of ["cpu", "memory"]) if (!c.resources?.[k]?.[r]) bad.push(`${where}: ${k}.${r}`);
        }
        if (!c.readinessProbe) bad.push(`${where}: readinessProbe`);
        if (!c.livenessProbe) bad.push(`${where}: livenessProbe`);
        if (!/(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/.test(c.image ?? "") || /:latest$/.test(c.image)) {
          bad.push(`${where}: image ${c.image} is not pinned`);
        }
      }
    }
    return bad;
  }],
  ["services-run", "each service: its program, native gRPC probes on the health port (the gateway: HTTPS /healthz), a preStop pause, and a grace period covering preStop + drain_notice + shutdown_grace", (docs) => {
    const bad = [];
    for (const s of SERVICES) {
      const d = named(docs, "Deployment", s);
      if (!d) { bad.push(`no Deployment ${s}`); continue; }
      const pod = d.spec.template.spec;
      const c = pod.containers.find((x) => x.name === s);
      if (!c) { bad.push(`${s}: no container ${s}`); continue; }
      if (JSON.stringify(c.command) !== JSON.stringify([`/usr/local/bin/crm-${s}`])) bad.push(`${s}: command`);
      const env = settingsOf(docs, c);
      if (s === "gateway") {
        for (const p of ["readinessProbe", "livenessProbe"]) {
          if (c[p]?.httpGet?.path !== "/healthz" || c[p]?.httpGet?.scheme !== "HTTPS") bad.push(`${s}: ${p} not HTTPS /healthz`);
        }
      } else {
        const healthPort = Number(String(env.CRM_HEALTH_LISTEN ?? "").split(":").pop());
        if (!healthPort) bad.push(`${s}: no CRM_HEALTH_LISTEN`);
        if (c.readinessProbe?.grpc?.port !== healthPort || c.readinessProbe.grpc.service) bad.push(`${s}: readiness not gRPC on ${healthPort}`);
        if (c.livenessProbe?.grpc?.port !== healthPort || c.livenessProbe.grpc.service !== "liveness") bad.push(`${s}: liveness not gRPC "liveness" on ${healthPort}`);
      }
      const pause = c.lifecycle?.preStop?.sleep?.seconds;
      if (!(pause > 0)) bad.push(`${s}: no preStop sleep`);
      const needed = (pause ?? 0) + seconds(env.CRM_DRAIN_NOTICE ?? "0") +
        (s === "gateway" ? 0 : seconds(env.CRM_SHUTDOWN_GRACE ?? "10s"));
      if (!((pod.terminationGracePeriodSeconds ?? 30) >= needed)) {
        bad.push(`${s}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} < ${needed}`);
      }
    }
    return bad;
  }],
  ["services-objects", "each service has a Service, its own ServiceAccount, a PodDisruptionBudget, an autoscaler, a ServiceMonitor on a metrics port and a NetworkPolicy", (docs) => {
    const bad = [];
    for (const s of SERVICES) {
      const d = named(docs, "Deployment", s);
      if (!d) continue;
      const svc = named(docs, "Service", s);
      if (!svc) bad.push(`no Service ${s}`);
      const sa = d.spec.template.spec.serviceAccountName;
      if (sa !== s || !named(docs, "ServiceAccount", s)) bad.push(`${s}: ServiceAccount`);
      const pdb = named(docs, "PodDisruptionBudget", s);
      if (!pdb || pdb.spec.selector?.matchLabels?.["app.kubernetes.io/name"] !== s) bad.push(`${s}: PodDisruptionBudget`);
      const hpa = named(docs, "HorizontalPodAutoscaler", s);
      if (!hpa || hpa.spec.scaleTargetRef?.name !== s || hpa.spec.scaleTargetRef?.kind !== "Deployment") bad.push(`${s}: HorizontalPodAutoscaler`);
      const sm = named(docs, "ServiceMonitor", s);
      const port = sm?.spec.endpoints?.[0]?.port;
      const selected = sm && ofKind(docs, "Service").find((x) =>
        Object.entries(sm.spec.selector.matchLabels).every(([k, v]) => x.metadata.labels?.[k] === v));
      if (!selected || !(selected.spec.ports ?? []).some((p) => p.name === port)) bad.push(`${s}: ServiceMonitor does not reach a metrics port`);
      if (!ofKind(docs, "NetworkPolicy").some((p) => appName(p.spec.podSelector?.matchLabels) === s)) bad.push(`${s}: NetworkPolicy`);
    }
    return bad;
  }],
  ["certificates", "each service (and crmctl's operator) has a Certificate from the suite's CA carrying spiffe://crm.local/<name>, mounted as its TLS files", (docs) => {
    const bad = [];
    for (const n of [...SERVICES, "operator"]) {
      const cert = named(docs, "Certificate", n);
      if (!cert) { bad.push(`no Certificate ${n}`); continue; }
      if (JSON.stringify(cert.spec.uris) !== JSON.stringify([`spiffe://crm.local/${n}`])) bad.push(`${n}: uris ${JSON.stringify(cert.spec.uris)}`);
      const issuer = named(docs, cert.spec.issuerRef.kind ?? "Issuer", cert.spec.issuerRef.name);
      if (!issuer?.spec.ca) bad.push(`${n}: not issued by the suite's CA issuer`);
      for (const u of ["server auth", "client auth"]) if (!(cert.spec.usages ?? []).includes(u)) bad.push(`${n}: usage ${u}`);
      const d = named(docs, "Deployment", n);
      if (n !== "operator") {
        const vol = d?.spec.template.spec.volumes?.find((v) => v.name === "tls");
        if (vol?.secret?.secretName !== cert.spec.secretName) bad.push(`${n}: TLS volume is not ${cert.spec.secretName}`);
        const mount = d?.spec.template.spec.containers[0].volumeMounts?.find((m) => m.name === "tls");
        const env = d ? settingsOf(docs, d.spec.template.spec.containers[0]) : {};
        for (const [k, f] of [["CRM_TLS_CERT", "tls.crt"], ["CRM_TLS_KEY", "tls.key"], ["CRM_TLS_CA", "ca.crt"]]) {
          if (env[k] !== `${mount?.mountPath}/${f}`) bad.push(`${n}: ${k} is not ${mount?.mountPath}/${f}`);
        }
      }
    }
    return bad;
  }],
  ["network-edges", "the NetworkPolicies allow exactly the edges of deploy/call-graph.json between the suite's pods, behind a default deny", (docs) => {
    const bad = [];
    const deny = ofKind(docs, "NetworkPolicy").find((p) => Object.keys(p.spec.podSelector ?? {}).length === 0 &&
      !p.spec.ingress && !p.spec.egress && ["Ingress", "Egress"].every((t) => (p.spec.policyTypes ?? []).includes(t)));
    if (!deny) bad.push("no default-deny NetworkPolicy");
    const want = expectedEdges();
    const { ingress, egress } = policyEdges(docs);
    for (const [side, got] of [["ingress", ingress], ["egress", egress]]) {
      for (const e of setDiff(got, want)) bad.push(`${side} allows ${e}, not in the call graph`);
      for (const e of setDiff(want, got)) bad.push(`${side} lacks ${e} of the call graph`);
    }
    return bad;
  }],
  ["addresses", "the addresses each service is given name exactly its calls in deploy/call-graph.json, at their ports", (docs) => {
    const bad = [];
    for (const s of SERVICES) {
      const d = named(docs, "Deployment", s);
      if (!d) continue;
      const env = settingsOf(docs, d.spec.template.spec.containers[0]);
      bad.push(...compareAddresses(`k8s ${s}`, s, addressedServices(env)));
      if (graph[s].stores.some((x) => x.startsWith("postgres")) !== Boolean(env.CRM_DB_URL)) bad.push(`${s}: CRM_DB_URL against stores`);
      if (graph[s].stores.includes("redis") !== Boolean(env.CRM_REDIS_ADDR)) bad.push(`${s}: CRM_REDIS_ADDR against stores`);
    }
    return bad;
  }],
  ["secrets", "no Secret is rendered; every Secret a pod or operator object uses, with the keys it uses, is made by tools/k8s-secrets, cert-manager or CloudNativePG", (docs, ctx) => {
    const bad = [];
    for (const s of ofKind(docs, "Secret")) bad.push(`Secret ${s.metadata.name} in the manifests`);
    const made = {};
    for (const s of ctx.secrets) made[s.metadata.name] = Object.keys(s.data ?? {});
    for (const c of ofKind(docs, "Certificate")) made[c.spec.secretName] = ["tls.crt", "tls.key", "ca.crt"];
    Object.assign(made, CNPG_SECRETS, BROUGHT_BY_OPERATOR);
    const use = (where, name, key) => {
      if (!made[name]) bad.push(`${where}: Secret ${name} is made by nobody`);
      else if (key && !made[name].includes(key)) bad.push(`${where}: Secret ${name} has no key ${key}`);
    };
    for (const { w, pod } of podSpecs(docs)) {
      for (const v of pod.volumes ?? []) {
        if (!v.secret) continue;
        if (v.secret.items) for (const i of v.secret.items) use(w.metadata.name, v.secret.secretName, i.key);
        else use(w.metadata.name, v.secret.secretName);
      }
      for (const c of pod.containers) {
        for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) use(w.metadata.name, e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key);
        for (const e of c.envFrom ?? []) if (e.secretRef) use(w.metadata.name, e.secretRef.name);
        const env = settingsOf(docs, c);
        for (const [k, v] of Object.entries(env)) {
          if (!k.endsWith("_FILE") || typeof v !== "string" || !v.startsWith("/etc/crm/")) continue;
          const mount = c.volumeMounts?.find((m) => v.startsWith(`${m.mountPath}/`));
          const vol = pod.volumes?.find((x) => x.name === mount?.name);
          if (!vol) bad.push(`${w.metadata.name}: ${k} is not under a mounted volume`);
          else if (vol.secret) use(`${w.metadata.name} ${k}`, vol.secret.secretName, v.slice(mount.mountPath.length + 1));
        }
      }
    }
    for (const cl of ofKind(docs, "Cluster")) {
      for (const r of cl.spec.managed?.roles ?? []) use(`Cluster role ${r.name}`, r.passwordSecret?.name, "password");
      const s3 = cl.spec.backup?.barmanObjectStore?.s3Credentials;
      for (const k of ["accessKeyId", "secretAccessKey"]) if (s3?.[k]) use("Cluster backup", s3[k].name, s3[k].key);
    }
    for (const ing of ofKind(docs, "Ingress")) {
      for (const t of ing.spec.tls ?? []) use(`Ingress ${ing.metadata.name}`, t.secretName);
      const proxy = ing.metadata.annotations?.["nginx.ingress.kubernetes.io/proxy-ssl-secret"];
      if (proxy) use(`Ingress ${ing.metadata.name}`, proxy.split("/").pop(), "ca.crt");
    }
    return bad;
  }],
  ["settings-known", "every CRM_* variable a service is given is a setting its program knows (a stray one stops it at start)", (docs) => {
    const bad = [];
    for (const s of SERVICES) {
      const d = named(docs, "Deployment", s);
      if (!d) continue;
      const known = settingsKnownBy(s);
      for (const k of Object.keys(settingsOf(docs, d.spec.template.spec.containers[0]))) {
        if (k.startsWith("CRM_") && !known.has(k)) bad.push(`${s}: ${k} is not a setting of crm-${s}`);
      }
    }
    return bad;
  }],
  ["config-refs", "every ConfigMap a pod uses exists, with the keys it uses", (docs) => {
    const bad = [];
    for (const { w, pod } of podSpecs(docs)) {
      const need = (name, key) => {
        const cm = named(docs, "ConfigMap", name);
        if (!cm) bad.push(`${w.metadata.name}: no ConfigMap ${name}`);
        else if (key && !(key in (cm.data ?? {}))) bad.push(`${w.metadata.name}: ConfigMap ${name} has no ${key}`);
      };
      for (const v of pod.volumes ?? []) if (v.configMap) need(v.configMap.name);
      for (const c of pod.containers) {
        for (const e of c.envFrom ?? []) if (e.configMapRef) need(e.configMapRef.name);
        for (const e of c.env ?? []) if (e.valueFrom?.configMapKeyRef) need(e.valueFrom.configMapKeyRef.name, e.valueFrom.configMapKeyRef.key);
        for (const k of Object.keys(settingsOf(docs, c))) {
          if (k.startsWith("CRM_") && c.name !== "redis" && !/^[A-Z0-9_]+$/.test(k)) bad.push(`${w.metadata.name}: setting ${k}`);
        }
      }
    }
    return bad;
  }],
  ["alerts", "the alerts exist (overdue erasure, outbox lag, lockout burst, certificate expiry) and name only metrics our code exports", (docs) => {
    const bad = [];
    const rules = ofKind(docs, "PrometheusRule").flatMap((r) => r.spec.groups.flatMap((g) => g.rules));
    for (const m of ["crm_erasure_overdue_requests", "crm_outbox_lag_seconds", "crm_identity_lockouts_total",
      "crm_tls_certificate_expiry_timestamp_seconds"]) {
      if (!rules.some((r) => String(r.expr).includes(m))) bad.push(`no alert on ${m}`);
    }
    const known = registeredMetrics();
    for (const r of rules) {
      for (const m of String(r.expr).matchAll(/\bcrm_[a-z0-9_]+\b/g)) {
        if (!known.has(m[0])) bad.push(`${r.alert}: ${m[0]} is exported by no service`);
      }
      if (!r.annotations?.summary) bad.push(`${r.alert}: no summary`);
    }
    return bad;
  }],
  ["datastores", "PostgreSQL requires TLS, has a role and database per service and scheduled backups (not in dev); Redis persists and takes its password from a Secret", (docs, ctx) => {
    const bad = [];
    for (const [clusterName, store] of Object.entries(CNPG_CLUSTERS)) {
      const cl = named(docs, "Cluster", clusterName);
      if (!cl) { bad.push(`no CloudNativePG Cluster ${clusterName}`); continue; }
      const hba = cl.spec.postgresql?.pg_hba ?? [];
      if (!hba.some((l) => /^hostnossl\s+all\s+all\s+0\.0\.0\.0\/0\s+reject/.test(l)) ||
        !hba.some((l) => /^hostnossl\s+all\s+all\s+::\/0\s+reject/.test(l))) bad.push(`${clusterName} accepts connections without TLS`);
      for (const s of SERVICES.filter((x) => graph[x].stores.includes(store))) {
        const initdb = cl.spec.bootstrap?.initdb ?? {};
        const own = initdb.database === s && initdb.owner === s && initdb.secret?.name === `crm-db-${s}`;
        if (!own && !(cl.spec.managed?.roles ?? []).some((r) => r.name === s && r.login)) bad.push(`${clusterName}: no role ${s}`);
        if (!own && !(initdb.postInitSQL ?? []).includes(`CREATE DATABASE ${s} OWNER ${s}`)) bad.push(`${clusterName}: no database ${s}`);
        const url = settingsOf(docs, named(docs, "Deployment", s)?.spec.template.spec.containers[0] ?? {}).CRM_DB_URL ?? "";
        if (!/sslmode=verify-full/.test(url) || !url.includes(`host=${clusterName}-rw `) || !url.includes(`dbname=${s} `) ||
          /password=/.test(url)) bad.push(`${s}: CRM_DB_URL must verify-full, reach ${clusterName}, name its own database and hold no password`);
      }
      const backup = ofKind(docs, "ScheduledBackup").find((b) => b.spec.cluster?.name === clusterName);
      if (ctx.overlay !== "dev" && (!cl.spec.backup?.barmanObjectStore || !backup || backup.spec.suspend)) bad.push(`${clusterName} has no scheduled backup`);
    }
    const redis = named(docs, "StatefulSet", "redis");
    const conf = named(docs, "ConfigMap", "redis")?.data?.["redis.conf"] ?? "";
    if (!redis || !/^appendonly yes$/m.test(conf)) bad.push("Redis does not persist (appendonly)");
    if (/requirepass\s+\S/.test(conf.replace(/^#.*$/gm, "")) && !/^include /m.test(conf)) bad.push("Redis password in a ConfigMap");
    if (!/^include \/etc\/redis\/auth\/auth\.conf$/m.test(conf)) bad.push("Redis does not read its password from the Secret");
    return bad;
  }],
  ["overlay-shape", "production: two or more replicas of each service on distinct nodes, spread over zones, memory limits equal to requests, replicated PostgreSQL and Redis; dev: one of each", (docs, ctx) => {
    const bad = [];
    for (const s of SERVICES) {
      const d = named(docs, "Deployment", s);
      const hpa = named(docs, "HorizontalPodAutoscaler", s);
      if (!d || !hpa) continue;
      const pod = d.spec.template.spec;
      if (ctx.overlay === "production") {
        if (!(d.spec.replicas >= 2) || !(hpa.spec.minReplicas >= 2)) bad.push(`${s}: fewer than 2 replicas`);
        if (!pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution) bad.push(`${s}: no pod anti-affinity`);
        if (!(pod.topologySpreadConstraints ?? []).some((t) => t.topologyKey === "topology.kubernetes.io/zone")) bad.push(`${s}: no zone spread`);
        const r = pod.containers[0].resources;
        if (r?.limits?.memory !== r?.requests?.memory) bad.push(`${s}: memory limit differs from its request`);
      } else if (ctx.overlay === "dev") {
        if (d.spec.replicas !== 1 || hpa.spec.maxReplicas !== 1) bad.push(`${s}: not one replica`);
      }
    }
    if (ctx.overlay === "production") {
      for (const c of Object.keys(CNPG_CLUSTERS)) {
        if (!(named(docs, "Cluster", c)?.spec.instances >= 3)) bad.push(`${c} has fewer than 3 instances`);
      }
      if (!(named(docs, "StatefulSet", "redis")?.spec.replicas >= 2)) bad.push("Redis is not replicated");
    }
    return bad;
  }],
];

function compareAddresses(where, service, found) {
  const bad = [];
  for (const f of found) {
    if (f.bad) { bad.push(`${where}: ${f.setting} holds ${f.bad}`); continue; }
    if (!graph[f.name]) bad.push(`${where}: ${f.setting} names ${f.name}, not a service`);
    else if (!graph[service].calls.includes(f.name)) bad.push(`${where}: ${f.setting} calls ${f.name}, not in the call graph`);
    else if (f.port !== graph[f.name].port && f.port !== undefined) bad.push(`${where}: ${f.setting} uses port ${f.port} of ${f.name}`);
  }
  const named_ = new Set(found.map((f) => f.name));
  for (const c of graph[service].calls) if (!named_.has(c)) bad.push(`${where}: calls ${c} in the graph but is given no address of it`);
  return bad;
}

function runChecks(docs, ctx) {
  const problems = [];
  for (const [id, , check] of checks) for (const p of check(docs, ctx)) problems.push({ id, p });
  return problems;
}

// One way to break the rendered objects per check; the check must notice.
const clone = (x) => structuredClone(x);
const dep = (docs, n) => named(docs, "Deployment", n);
const mutations = [
  ["pods-secure", (d) => { delete dep(d, "audit").spec.template.spec.securityContext.runAsNonRoot; delete dep(d, "audit").spec.template.spec.containers[0].securityContext.runAsNonRoot; }],
  ["pods-secure", (d) => { named(d, "StatefulSet", "redis").spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false; }],
  ["pods-secure", (d) => { delete dep(d, "gateway").spec.template.spec.containers[0].securityContext.capabilities; }],
  ["pods-resources-probes", (d) => { delete dep(d, "consent").spec.template.spec.containers[0].resources.limits; }],
  ["pods-resources-probes", (d) => { delete dep(d, "mailing").spec.template.spec.containers[0].readinessProbe; }],
  ["pods-resources-probes", (d) => { dep(d, "erasure").spec.template.spec.containers[0].image = "registry.example/crm:latest"; }],
  ["services-run", (d) => { dep(d, "identity").spec.template.spec.terminationGracePeriodSeconds = 5; }],
  ["services-run", (d) => { dep(d, "contacts").spec.template.spec.containers[0].livenessProbe = { grpc: { port: 8081 } }; }],
  ["services-run", (d) => { delete dep(d, "audit").spec.template.spec.containers[0].lifecycle; }],
  ["services-objects", (d) => { d.splice(d.indexOf(named(d, "PodDisruptionBudget", "consent")), 1); }],
  ["services-objects", (d) => { named(d, "ServiceMonitor", "audit").spec.endpoints[0].port = "http"; }],
  ["certificates", (d) => { named(d, "Certificate", "mailing").spec.uris = ["spiffe://crm.local/gateway"]; }],
  ["certificates", (d) => { dep(d, "erasure").spec.template.spec.volumes.find((v) => v.name === "tls").secret.secretName = "audit-tls"; }],
  ["network-edges", (d) => { named(d, "NetworkPolicy", "gateway").spec.egress.push({ to: [{ podSelector: { matchLabels: { "app.kubernetes.io/name": "redis" } } }], ports: [{ protocol: "TCP", port: 6379 }] }); }],
  ["network-edges", (d) => { named(d, "NetworkPolicy", "audit").spec.ingress[0].from.pop(); }],
  ["network-edges", (d) => { d.splice(d.indexOf(named(d, "NetworkPolicy", "default-deny")), 1); }],
  ["addresses", (d) => { dep(d, "audit").spec.template.spec.containers[0].env.push({ name: "CRM_CONSENT_ADDR", value: "dns:///consent:50053" }); }],
  ["addresses", (d) => { dep(d, "mailing").spec.template.spec.containers[0].env = dep(d, "mailing").spec.template.spec.containers[0].env.filter((e) => e.name !== "CRM_CONTACTS_ADDR"); }],
  ["secrets", (d) => { d.push({ apiVersion: "v1", kind: "Secret", metadata: { name: "oops" }, data: { a: "Yg==" } }); }],
  ["secrets", (d) => { dep(d, "consent").spec.template.spec.volumes.find((v) => v.name === "keys").secret.secretName = "crm-nobody-keys"; }],
  ["secrets", (d) => { dep(d, "contacts").spec.template.spec.containers[0].env.push({ name: "CRM_LINK_KEY_FILE", value: "/etc/crm/keys/links.key" }); }],
  ["config-refs", (d) => { dep(d, "gateway").spec.template.spec.containers[0].envFrom[0].configMapRef.name = "crm-nothing"; }],
  ["settings-known", (d) => { named(d, "ConfigMap", "crm-services").data.CRM_HEALTH_LISTENER = "0.0.0.0:8081"; }],
  ["alerts", (d) => { named(d, "PrometheusRule", "crm").spec.groups[0].rules[0].expr = "max(crm_erasure_overdue_requestz) > 0"; }],
  ["datastores", (d) => { named(d, "Cluster", "crm-postgres").spec.postgresql.pg_hba = ["host all all all scram-sha-256"]; }],
  ["datastores", (d) => { named(d, "ConfigMap", "redis").data["redis.conf"] = "appendonly no\n"; }],
  ["datastores", (d) => { dep(d, "erasure").spec.template.spec.containers[0].env.find((e) => e.name === "CRM_DB_URL").value = "host=crm-postgres-rw port=5432 dbname=erasure user=erasure sslmode=verify-full sslrootcert=/etc/crm/postgres-ca/ca.crt"; }],
];
const overlayMutations = {
  production: [["overlay-shape", (d) => { named(d, "HorizontalPodAutoscaler", "identity").spec.minReplicas = 1; }],
    ["overlay-shape", (d) => { delete dep(d, "gateway").spec.template.spec.affinity; }],
    ["datastores", (d) => { named(d, "ScheduledBackup", "crm-postgres-nightly").spec.suspend = true; }],
    ["datastores", (d) => { delete named(d, "Cluster", "crm-postgres-erasure").spec.backup; }],
    ["overlay-shape", (d) => { named(d, "Cluster", "crm-postgres-erasure").spec.instances = 1; }]],
  dev: [["overlay-shape", (d) => { dep(d, "audit").spec.replicas = 3; }]],
};

function checkRepository() {
  const bad = [];
  for (const dir of ["k8s", "deploy"]) {
    for (const [p, text] of filesUnder(join(root, dir))) {
      const where = relative(root, p);
      if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) bad.push(`${where}: a private key`);
      if (/^\s*\d+\s+[A-Za-z0-9+/]{43}=\s*$/m.test(text)) bad.push(`${where}: a key-ring entry`);
      if (/\.ya?ml$/.test(p)) {
        for (const o of parseYaml(text, where)) {
          if (o?.kind === "Secret" && (o.data || o.stringData)) bad.push(`${where}: Secret ${o.metadata?.name} with values`);
        }
        if (/password\s*[:=]\s*[^\s$<{"'][^\s]*/i.test(text.replace(/^\s*#.*$/gm, "").replace(/passwordSecret/g, ""))) bad.push(`${where}: a password value`);
      }
      if (/\.env$/.test(p) && /password=[^$\s]/i.test(text)) bad.push(`${where}: a password value`);
    }
  }
  return bad;
}

async function main() {
  let failed = 0;
  const fail = (msg) => { console.log(`FAIL ${msg}`); failed++; };
  const secrets = generatedSecrets();
  for (const s of secrets) {
    const err = await validateSchema(s);
    if (err) fail(`tools/k8s-secrets: Secret ${s.metadata.name}: ${err}`);
  }
  console.log(`ok: tools/k8s-secrets makes ${secrets.length} Secrets`);
  const targets = [["dev", "k8s/overlays/dev"], ["production", "k8s/overlays/production"],
    ["base", "k8s/base"], ["external-secrets", "k8s/examples/external-secrets"]];
  for (const [overlay, dir] of targets) {
    let docs;
    try {
      docs = kustomize(join(root, dir));
    } catch (e) {
      fail(e.message);
      continue;
    }
    let invalid = 0;
    for (const o of docs) {
      const err = await validateSchema(o);
      if (err) { fail(`${dir}: ${o.kind}/${o.metadata?.name}: ${err}`); invalid++; }
    }
    if (invalid === 0) console.log(`ok: ${dir} renders ${docs.length} objects, each valid against its schema`);
    if (overlay === "external-secrets") {
      const made = new Set(docs.filter((o) => o.kind === "ExternalSecret").map((o) => o.spec.target?.name ?? o.metadata.name));
      for (const s of secrets) if (!made.has(s.metadata.name)) fail(`${dir}: no ExternalSecret makes ${s.metadata.name}`);
      continue;
    }
    const ctx = { overlay, secrets };
    const problems = runChecks(docs, ctx);
    for (const { id, p } of problems) fail(`${dir}: ${id}: ${p}`);
    if (problems.length === 0) console.log(`ok: ${dir} meets all ${checks.length} policies`);
    if (overlay === "base") continue;
    let caught = 0;
    const all = [...mutations, ...(overlayMutations[overlay] ?? [])];
    for (const [id, mutate] of all) {
      const copy = clone(docs);
      mutate(copy);
      if (!runChecks(copy, ctx).some((x) => x.id === id)) fail(`${dir}: ${id} did not notice a break it checks for: ${mutate}`);
      else caught++;
    }
    if (caught === all.length) console.log(`ok: ${dir}: each of ${all.length} deliberate breaks is reported`);
  }
  // deploy/local: the addresses of tools/dev up follow the same graph.
  for (const s of SERVICES) {
    const text = readFileSync(join(root, "deploy", "local", `${s}.env`), "utf8");
    const found = [];
    for (const line of text.split("\n")) {
      const m = /^(CRM_[A-Z_]+)=(.*)$/.exec(line);
      if (!m || !/_ADDR$|^CRM_TARGETS$|^CRM_SERVICES$/.test(m[1]) || m[1] === "CRM_REDIS_ADDR") continue;
      for (const a of m[2].matchAll(/\$\{ADDR_([a-z]+)\}/g)) found.push({ setting: m[1], name: a[1] });
    }
    for (const p of compareAddresses(`deploy/local/${s}.env`, s, found)) fail(p);
    const files = s === "gateway" ? [`${s}.env`] : ["services.env", `${s}.env`];
    for (const f of files) {
      for (const m of readFileSync(join(root, "deploy", "local", f), "utf8").matchAll(/^(CRM_[A-Z0-9_]+)=/gm)) {
        if (!settingsKnownBy(s).has(m[1])) fail(`deploy/local/${f}: ${m[1]} is not a setting of crm-${s}`);
      }
    }
  }
  console.log("ok: deploy/local addresses follow deploy/call-graph.json; every setting there is known");
  const leaks = checkRepository();
  for (const l of leaks) fail(`secret values in the repository: ${l}`);
  if (leaks.length === 0) console.log("ok: no secret values under k8s/ or deploy/");
  // The repository scan must notice a key.
  const probe = /^\s*\d+\s+[A-Za-z0-9+/]{43}=\s*$/m.test(`1 ${Buffer.alloc(32, 7).toString("base64")}`);
  if (!probe) fail("the key-ring pattern misses a key-ring line");
  process.exit(failed === 0 ? 0 : 1);
}

await main();
