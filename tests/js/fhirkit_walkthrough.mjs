// A vendor's walk-through with fhir-kit-client (npm, 2.x) against a running `kroniker serve`, as a vendor's
// integration would do it: capabilities, submit (create, update, an MHD ITI-65 transaction), search with paging,
// read, read back the document, vread, withdraw by JSON Patch, the audit log. Run by tests/test_server_fhirkit.py,
// which checks what this prints (one JSON object) against what it sent. Input: the environment (FHIR_BASE, tokens,
// the patient's CPR, the files of the documents and the transaction).
import { readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';

const env = process.env;
const base = env.FHIR_BASE;
const cprSystem = 'urn:oid:1.2.208.176.1.2';
const load = (path) => JSON.parse(readFileSync(path, 'utf8'));
const as = (token) => new Client({ baseUrl: base, bearerToken: token });
const refused = async (promise) => {
  try {
    await promise;
    return { status: 'not refused' };
  } catch (error) {
    const data = error.response?.data ?? {};
    const codes = (data.issue ?? []).flatMap((i) => (i.details?.coding ?? []).map((c) => c.code));
    return { status: error.response?.status, resourceType: data.resourceType, codes };
  }
};

const out = {};
const gp = as(env.SOURCE_TOKEN);
const me = as(env.CITIZEN_TOKEN);
const admin = as(env.ADMIN_TOKEN);

const cs = await gp.capabilityStatement();
out.capabilities = {
  resourceType: cs.resourceType,
  fhirVersion: cs.fhirVersion,
  bundle: (cs.rest[0].resource.find((r) => r.type === 'Bundle')?.interaction ?? []).map((i) => i.code),
  system: (cs.rest[0].interaction ?? []).map((i) => i.code),
};

// create: POST [base]/Bundle answers with the DocumentReference registered for the document
const created = await gp.create({ resourceType: 'Bundle', body: load(env.DOC_CREATE) });
out.created = { resourceType: created.resourceType, id: created.id };
// update: PUT [base]/Bundle/{id}, FHIR's update as create, answers with the document
const doc = load(env.DOC_UPDATE);
const updated = await gp.update({ resourceType: 'Bundle', id: doc.id, body: doc });
out.updated = { resourceType: updated.resourceType, id: updated.id, type: updated.type };
out.updatedAgain = await refused(gp.update({ resourceType: 'Bundle', id: doc.id,
  body: { ...doc, timestamp: '2026-11-21T00:06:00+01:00' } }));
// an MHD ITI-65 Provide Document Bundle
const tx = await gp.transaction({ body: load(env.TRANSACTION) });
out.transaction = {
  type: tx.type,
  statuses: tx.entry.map((e) => e.response.status),
  locations: tx.entry.map((e) => e.response.location),
};

// search, paged by the server's next links
const searchParams = { 'patient.identifier': `${cprSystem}|${env.CPR}`, _count: 2, _sort: 'date' };
let page = await me.search({ resourceType: 'DocumentReference', searchParams });
out.search = { total: page.total, pages: 0, ids: [] };
while (page) {
  out.search.pages += 1;
  out.search.ids.push(...(page.entry ?? []).map((e) => e.resource.id));
  page = await me.nextPage({ bundle: page });
}

// read, read back the document, vread
const read = await me.read({ resourceType: 'DocumentReference', id: created.id });
out.read = { id: read.id, versionId: read.meta.versionId, status: read.status };
const back = await me.read({ resourceType: 'Bundle', id: doc.id });
out.readBack = { resourceType: back.resourceType, id: back.id, identifier: back.identifier?.value };
const v1 = await me.vread({ resourceType: 'DocumentReference', id: created.id, version: '1' });
out.vread = { id: v1.id, versionId: v1.meta.versionId };
out.readByOther = await refused(as(env.STRANGER_TOKEN).read({ resourceType: 'DocumentReference', id: created.id }));

// withdraw the document updated above (entered-in-error) with a JSON Patch, version-aware (If-Match), the reason
// as a header; then the citizen's read of it (gone), and the same patch again with its stale If-Match (412)
const current = await me.read({ resourceType: 'DocumentReference', id: doc.id });
const withdraw = [{ op: 'test', path: '/status', value: 'current' },
  { op: 'replace', path: '/status', value: 'entered-in-error' }];
const reason = 'Forkert patient – notatet hører til en anden';
const patched = await admin.patch({ resourceType: 'DocumentReference', id: doc.id, jsonPatch: withdraw,
  options: { headers: { 'X-Reason': encodeURIComponent(reason), 'If-Match': `W/"${current.meta.versionId}"` } } });
out.patched = { id: patched.id, status: patched.status, versionId: patched.meta.versionId,
  description: patched.description };
out.readWithdrawn = await refused(me.read({ resourceType: 'DocumentReference', id: doc.id }));
out.patchedAgain = await refused(admin.patch({ resourceType: 'DocumentReference', id: doc.id, jsonPatch: withdraw,
  options: { headers: { 'X-Reason': encodeURIComponent(reason), 'If-Match': `W/"${current.meta.versionId}"` } } }));

// the audit log: the admin's view of the patient, and the citizen's own (MinLog)
const log = await admin.search({ resourceType: 'AuditEvent', searchParams: { 'patient.identifier': `${cprSystem}|${env.CPR}` } });
out.audit = { resourceType: log.resourceType, total: log.total,
  actions: (log.entry ?? []).map((e) => e.resource.subtype?.[0]?.code ?? e.resource.action) };
const minlog = await me.search({ resourceType: 'AuditEvent', searchParams: {} });
out.minlog = { total: minlog.total };

console.log(JSON.stringify(out));
