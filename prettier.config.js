/**
 * The formatter's settings, matching how the code was written before it: single quotes,
 * semicolons, trailing commas, long lines (160 columns held 99% of them). `npm test` runs
 * `npm run format:check`; `npm run format` rewrites the tree.
 * @type {import('prettier').Config}
 */
export default {
  printWidth: 160,
  singleQuote: true,
  semi: true,
  trailingComma: 'all',
  arrowParens: 'always',
};
