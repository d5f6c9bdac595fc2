/** webqat's version (kept equal to package.json's "version"; test/tune.test.ts checks it). */
export const VERSION = '0.1.0';
