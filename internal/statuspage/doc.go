// Package statuspage serves the status pages of the scaler (at / on its
// --http-address) and of the activator (at / on its --admin-address).
//
// The pages are rendered on the server from the same data as the JSON API
// (html/template, assets embedded in the binary: no CDN, no network), so
// that every table reads without JavaScript. Where JavaScript runs, a small
// script refreshes the live parts of the page every few seconds and opens
// the decision clicked on the chart. The scaler's page can also try a rule
// set once against the live data (Scaler's Try option, the --ui-try flag):
// the answer is shown and kept nowhere.
//
// The addresses serving the pages have no authentication: they are meant to
// stay cluster-internal (docs/operations.md).
package statuspage
