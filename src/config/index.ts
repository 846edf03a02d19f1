export * from './schema.js';
export * from './parse.js';
export * from './placeholders.js';
export * from './fingerprint.js';
