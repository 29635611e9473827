// Lints deploy/Dockerfile (and .dockerignore) with hadolint-style rules, since
// no container engine or hadolint runs here. Each rule is then shown to fire:
// the real file is changed one way per rule and the rule must report it.
//   node tests/deploy/dockerfile_test.mjs [path/to/Dockerfile]
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

// Instructions of a Dockerfile: {line, op, args}; continuation lines joined,
// comments and the parser directive skipped.
export function parse(text) {
  const out = [];
  let pending = null;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trimEnd();
    if (pending === null && (line.trim() === "" || line.trimStart().startsWith("#"))) return;
    if (pending !== null && line.trimStart().startsWith("#")) return;
    const text = pending === null ? line : `${pending.text} ${line.trim()}`;
    const start = pending === null ? i + 1 : pending.line;
    if (text.endsWith("\\")) {
      pending = { text: text.slice(0, -1).trimEnd(), line: start };
      return;
    }
    pending = null;
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(text);
    if (m) out.push({ line: start, op: m[1].toUpperCase(), args: m[2].trim() });
    else out.push({ line: start, op: "?", args: text.trim() });
  });
  return out;
}

// Stages: [{from, name, instructions}], ARGs before the first FROM resolved.
function stages(instructions) {
  const globalArgs = {};
  const result = [];
  for (const ins of instructions) {
    if (ins.op === "ARG" && result.length === 0) {
      const [k, v = ""] = ins.args.split("=");
      globalArgs[k] = v;
    } else if (ins.op === "FROM") {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      const image = (m ? m[1] : ins.args).replace(/\$\{?(\w+)\}?/g, (_, k) => globalArgs[k] ?? "");
      result.push({ from: image, name: m?.[2], line: ins.line, instructions: [] });
    } else if (result.length > 0) {
      result[result.length - 1].instructions.push(ins);
    }
  }
  return result;
}

// Each rule: [id, what it asks, check(instructions, stages, dockerignore) -> [line, detail][]]
export const rules = [
  ["DL3006", "every FROM names a tag or digest (or scratch)", (ins, st) =>
    st.filter((s) => s.from !== "scratch" && !/[:@]/.test(s.from.split("/").pop()))
      .map((s) => [s.line, s.from])],
  ["DL3007", "no image is :latest", (ins, st) =>
    st.filter((s) => /:latest$/.test(s.from)).map((s) => [s.line, s.from])],
  ["CRM001", "several stages; the last is scratch and only copies from a named stage", (ins, st) => {
    const last = st[st.length - 1];
    if (st.length < 2 || last.from !== "scratch") return [[last?.line ?? 1, `runtime stage is ${last?.from}`]];
    return last.instructions
      .filter((i) => i.op === "RUN" || i.op === "ADD" ||
        (i.op === "COPY" && !/^--from=[A-Za-z]\S*\s/.test(i.args)))
      .map((i) => [i.line, `${i.op} in the runtime stage`]);
  }],
  ["DL3002", "the runtime stage ends as a numeric non-root USER", (ins, st) => {
    const users = st[st.length - 1].instructions.filter((i) => i.op === "USER");
    const last = users[users.length - 1];
    if (!last) return [[st[st.length - 1].line, "no USER"]];
    return /^[1-9][0-9]*(:[1-9][0-9]*)?$/.test(last.args) ? [] : [[last.line, last.args]];
  }],
  ["DL3020", "COPY, not ADD", (ins) => ins.filter((i) => i.op === "ADD").map((i) => [i.line, i.args])],
  ["DL3015", "apt-get install with --no-install-recommends", (ins) =>
    ins.filter((i) => i.op === "RUN" && /apt-get\s+install/.test(i.args) &&
      !/--no-install-recommends/.test(i.args)).map((i) => [i.line, "missing"])],
  ["DL3009", "apt lists removed in the RUN that fetched them", (ins) =>
    ins.filter((i) => i.op === "RUN" && /apt-get\s+update/.test(i.args) &&
      !/rm -rf \/var\/lib\/apt\/lists/.test(i.args)).map((i) => [i.line, "lists kept"])],
  ["DL3027", "apt-get, not apt", (ins) =>
    ins.filter((i) => i.op === "RUN" && /(^|[;&|]\s*)apt\s/.test(i.args)).map((i) => [i.line, i.args])],
  ["DL3004", "no sudo", (ins) =>
    ins.filter((i) => i.op === "RUN" && /\bsudo\b/.test(i.args)).map((i) => [i.line, i.args])],
  ["DL3003", "WORKDIR, not cd", (ins) =>
    ins.filter((i) => i.op === "RUN" && /(^|&&|;)\s*cd\s/.test(i.args)).map((i) => [i.line, i.args])],
  ["DL4006", "pipes run under SHELL [... -o pipefail ...]", (ins) => {
    let pipefail = false;
    const bad = [];
    for (const i of ins) {
      if (i.op === "FROM") pipefail = false;
      if (i.op === "SHELL") pipefail = /pipefail/.test(i.args);
      if (i.op === "RUN" && /[^|]\|[^|]/.test(i.args) && !pipefail) bad.push([i.line, "pipe without pipefail"]);
    }
    return bad;
  }],
  ["DL3025", "CMD and ENTRYPOINT in JSON form", (ins) =>
    ins.filter((i) => (i.op === "CMD" || i.op === "ENTRYPOINT") && !i.args.startsWith("["))
      .map((i) => [i.line, i.args])],
  ["DL3000", "WORKDIR is absolute", (ins) =>
    ins.filter((i) => i.op === "WORKDIR" && !i.args.startsWith("/")).map((i) => [i.line, i.args])],
  ["CRM002", "no secret in ENV or ARG", (ins) =>
    ins.filter((i) => (i.op === "ENV" || i.op === "ARG") &&
      /(PASSWORD|SECRET|TOKEN|PRIVATE|_KEY\b|APIKEY)/i.test(i.args)).map((i) => [i.line, i.args.split("=")[0]])],
  ["CRM003", "every instruction is known", (ins) =>
    ins.filter((i) => !["FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "SHELL", "CMD",
      "ENTRYPOINT", "LABEL", "EXPOSE", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD"].includes(i.op))
      .map((i) => [i.line, i.op])],
  ["CRM004", "COPY . needs a .dockerignore leaving out .git, .run and build trees", (ins, st, ignore) => {
    if (!ins.some((i) => i.op === "COPY" && /(^|\s)\.\s/.test(i.args))) return [];
    const lines = ignore.split("\n").map((l) => l.trim());
    return [".git", ".run", "build*", "**/node_modules"].filter((p) => !lines.includes(p))
      .map((p) => [0, `.dockerignore lacks ${p}`]);
  }],
];

export function lint(text, dockerignore) {
  const ins = parse(text);
  const st = stages(ins);
  const found = [];
  for (const [id, what, check] of rules) {
    for (const [line, detail] of check(ins, st, dockerignore)) found.push({ id, what, line, detail });
  }
  return found;
}

// One change of the real file per rule; the rule must report it.
const mutations = [
  ["DL3006", (d) => d.replace("ARG DEBIAN_IMAGE=debian:12-slim", "ARG DEBIAN_IMAGE=debian")],
  ["DL3007", (d) => d.replace("ARG DEBIAN_IMAGE=debian:12-slim", "ARG DEBIAN_IMAGE=debian:latest")],
  ["CRM001", (d) => d.replace("FROM scratch", "FROM debian:12-slim")],
  ["CRM001", (d) => d.replace("ENV LANG=C.UTF-8", "RUN true\nENV LANG=C.UTF-8")],
  ["DL3002", (d) => d.replace("USER 65532:65532", "USER root")],
  ["DL3002", (d) => d.replace("USER 65532:65532", "")],
  ["DL3020", (d) => d.replace("COPY . .", "ADD . .")],
  ["DL3015", (d) => d.replace(" --no-install-recommends", "")],
  ["DL3009", (d) => d.replace(" \\\n && rm -rf /var/lib/apt/lists/*", "")],
  ["DL3027", (d) => d.replace("RUN apt-get update", "RUN apt update")],
  ["DL3004", (d) => d.replace("RUN apt-get update", "RUN sudo apt-get update")],
  ["DL3003", (d) => d.replace("RUN cmake", "RUN cd /src && cmake")],
  ["DL4006", (d) => d.replace(/SHELL .*\n/, "")],
  ["DL3025", (d) => `${d}CMD crm-identity\n`],
  ["DL3000", (d) => d.replace("WORKDIR /src", "WORKDIR src")],
  ["CRM002", (d) => `${d}ENV DB_PASSWORD=x\n`],
  ["CRM003", (d) => `${d}MAINTAINER someone\n`],
];

function main() {
  const file = process.argv[2] ?? join(root, "deploy", "Dockerfile");
  const text = readFileSync(file, "utf8");
  const ignore = readFileSync(join(root, ".dockerignore"), "utf8");
  let failed = 0;
  const found = lint(text, ignore);
  for (const f of found) {
    console.log(`FAIL ${file}:${f.line}: ${f.id} ${f.what}: ${f.detail}`);
    failed++;
  }
  if (found.length === 0) console.log(`ok: ${file} passes ${rules.length} rules`);
  for (const [id, mutate] of mutations) {
    const changed = mutate(text);
    if (changed === text) {
      console.log(`FAIL: the mutation for ${id} no longer applies to ${file}; update the test`);
      failed++;
      continue;
    }
    if (!lint(changed, ignore).some((f) => f.id === id)) {
      console.log(`FAIL: ${id} did not fire on a Dockerfile that breaks it`);
      failed++;
    }
  }
  const ignoreMutated = ignore.replace(/^\.run$/m, "");
  if (!lint(text, ignoreMutated).some((f) => f.id === "CRM004")) {
    console.log("FAIL: CRM004 did not fire without .run in .dockerignore");
    failed++;
  }
  if (failed === 0) console.log(`ok: each of the ${mutations.length + 1} rule breaks is reported`);
  process.exit(failed === 0 ? 0 : 1);
}

main();
