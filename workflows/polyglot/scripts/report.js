// Joins the R summary (TSV) and the Rust checksum (key<TAB>value lines) into one JSON report.
'use strict';
const fs = require('fs');
const [summaryPath, checksumPath, outPath] = process.argv.slice(2);

function table(path) {
  const [header, ...rows] = fs.readFileSync(path, 'utf8').trim().split('\n');
  const keys = header.split('\t');
  return rows.map((row) => Object.fromEntries(row.split('\t').map((v, i) => [keys[i], v])));
}

const sites = table(summaryPath).map((r) => ({
  site: r.site,
  n: Number(r.n),
  mean: Number(r.mean),
  sd: Number(r.sd),
  slope: Number(r.slope),
}));
const checksum = Object.fromEntries(
  fs.readFileSync(checksumPath, 'utf8').trim().split('\n').map((l) => l.split('\t')),
);
const report = {
  sites,
  fastest_growing: sites.reduce((a, b) => (b.slope > a.slope ? b : a)).site,
  measurements: { lines: Number(checksum.lines), bytes: Number(checksum.bytes), fnv1a64: checksum.fnv1a64 },
  produced_by: { node: process.version },
};
fs.writeFileSync(outPath, JSON.stringify(report, null, 2) + '\n');
