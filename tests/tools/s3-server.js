#!/usr/bin/env node
// s3-server.js - the S3-compatible server of tests/integration/test-s3.sh: the npm package
// @20minutes/s3rver (a maintained s3rver fork that checks SigV4 signatures; s3rver 3.x does not),
// with the two multipart calls it lacks added behind its signature check:
// AbortMultipartUpload (DELETE /bucket/key?uploadId=) and ListMultipartUploads (GET /bucket?uploads).
//
// Usage: node s3-server.js MODULE_DIR DATA_DIR PORT ACCESS_KEY SECRET_KEY
//   MODULE_DIR is the folder holding node_modules/@20minutes/s3rver.
// Prints "ready PORT" on stdout once listening. Binds 127.0.0.1 only.
'use strict';

const fs = require('fs');
const path = require('path');

const [moduleDir, dataDir, port, accessKey, secretKey] = process.argv.slice(2);
if (!secretKey) {
  console.error('usage: s3-server.js MODULE_DIR DATA_DIR PORT ACCESS_KEY SECRET_KEY');
  process.exit(2);
}
const base = path.join(moduleDir, 'node_modules', '@20minutes', 's3rver');
const S3rver = require(base);
const router = require(path.join(base, 'lib', 'routes'));
const S3Error = require(path.join(base, 'lib', 'models', 'error'));
const AWSAccount = require(path.join(base, 'lib', 'models', 'account'));

// Only our key pair: the built-in S3RVER/S3RVER one must not let a wrong client in.
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);

function uploadsDir(ctx, bucket) {
  return ctx.app.store.getResourcePath(bucket, undefined, 'uploads');
}

// Requests without any Authorization are let through by s3rver (anonymous access): the tests
// want every request signed, so refuse those.
function requireSignature(ctx) {
  if (!ctx.get('authorization')) throw new S3Error('AccessDenied', 'Anonymous access is forbidden');
}

async function abortUpload(ctx, next) {
  requireSignature(ctx);
  if (ctx.method !== 'DELETE' || !('uploadId' in ctx.query)) return next();
  const id = ctx.query.uploadId;
  const dir = path.join(uploadsDir(ctx, ctx.params.bucket), path.basename(id));
  if (!/^[0-9a-f]+$/.test(id) || !fs.existsSync(dir))
    throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: id });
  fs.rmSync(dir, { recursive: true, force: true });
  ctx.status = 204;
}

async function listUploads(ctx, next) {
  requireSignature(ctx);
  if (ctx.method !== 'GET' || !('uploads' in ctx.query)) return next();
  const dir = uploadsDir(ctx, ctx.params.bucket);
  const ids = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  const uploads = ids.map((id) => ({
    Key: fs.readFileSync(path.join(dir, id, 'key'), 'utf8'),
    UploadId: id,
  }));
  ctx.body = {
    ListMultipartUploadsResult: { Bucket: ctx.params.bucket, Upload: uploads },
  };
}

// s3rver's router checks signatures in a router.use() layer; put ours right after it, before
// the routes that would answer "method not allowed".
function insertAfterAuth(layerPath, methods, handler) {
  router.register(layerPath, methods, [handler], { end: true });
  const added = router.stack.pop();
  const auth = router.stack.findIndex((l) => l.stack.some((fn) => fn.name === 'authentication'));
  if (auth < 0) throw new Error('s3rver layout changed: no authentication layer');
  router.stack.splice(auth + 1, 0, added);
}
insertAfterAuth('/:bucket/:key+', ['DELETE'], abortUpload);
insertAfterAuth('/:bucket', ['GET'], listUploads);
insertAfterAuth('/:bucket', ['PUT', 'HEAD', 'DELETE', 'POST'], (ctx, next) => {
  requireSignature(ctx);
  return next();
});
insertAfterAuth('/:bucket/:key+', ['GET', 'HEAD', 'PUT', 'POST'], (ctx, next) => {
  requireSignature(ctx);
  return next();
});

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  directory: dataDir,
  silent: true,
  allowMismatchedSignatures: false,
  resetOnClose: false,
});
server.run().then(({ port: p }) => console.log(`ready ${p}`), (err) => {
  console.error(`s3-server: ${err.message}`);
  process.exit(1);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close().finally(() => process.exit(0)));
