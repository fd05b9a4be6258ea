// Reads a JSON array of jambonz verb arrays on stdin; validates each with jambonz's own validator.
// Prints one JSON line per document: {"ok": true} or {"ok": false, "error": "..."}.
const {validate} = require('@jambonz/verb-specifications');

const logger = {info() {}, debug() {}, error() {}, warn() {}};
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const docs = JSON.parse(input);
  for (const doc of docs) {
    try {
      validate(logger, doc);
      console.log(JSON.stringify({ok: true}));
    } catch (err) {
      console.log(JSON.stringify({ok: false, error: err.message}));
    }
  }
});
