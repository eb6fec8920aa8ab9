// Whether the running Node satisfies the installed package's engines.node, with npm's own semver.
// argv: npm's executable (its bundled semver is found from npm's real path), the package's package.json.
// First call: prints engines.node when the running Node does not satisfy it, nothing otherwise.
// Second call, with CATWALK_NODE_VERSIONS (node-linux-<arch> versions on the npm registry, JSON) and
// CATWALK_NODE_SUPPORTED (the oldest LTS major still supported): prints the version to install.
"use strict";
const [npm, manifest] = process.argv.slice(2);
const fs = require("fs"), path = require("path");
let range;
try { range = (JSON.parse(fs.readFileSync(manifest, "utf8")).engines || {}).node; } catch (e) { process.exit(0); }
if (typeof range !== "string" || range.trim() === "") process.exit(0);
let dir = path.dirname(fs.realpathSync(npm));
for (;;) {
    const meta = path.join(dir, "package.json");
    if (fs.existsSync(meta) && JSON.parse(fs.readFileSync(meta, "utf8")).name === "npm") break;
    const up = path.dirname(dir);
    if (up === dir) { console.error("npm's own directory (and its semver) was not found from " + npm); process.exit(2); }
    dir = up;
}
const semver = require(path.join(dir, "node_modules", "semver"));
if (semver.validRange(range) === null) { console.error("engines.node \"" + range + "\" is not a semver range"); process.exit(3); }
if (!semver.satisfies(process.version, range)) {
    const versions = process.env.CATWALK_NODE_VERSIONS;
    if (!versions) { process.stdout.write(range); process.exit(0); }
    // Second call: the registry's versions are known; print the newest release of the lowest supported LTS
    // major that fits, else of the newest end-of-life LTS major (18 at the oldest) that fits.
    const all = JSON.parse(versions).filter((v) => semver.valid(v) && !semver.prerelease(v));
    const floor = Number(process.env.CATWALK_NODE_SUPPORTED);
    const lts = [...new Set(all.map((v) => semver.major(v)))].filter((m) => m % 2 === 0 && m >= 18);
    const supported = lts.filter((m) => m >= floor).sort((a, b) => a - b);
    const ended = lts.filter((m) => m < floor).sort((a, b) => b - a);
    for (const major of [...supported, ...ended]) {
        const newest = semver.maxSatisfying(all, major + ".x");
        if (newest && semver.satisfies(newest, range)) { process.stdout.write(newest); process.exit(0); }
    }
    process.exit(4);
}
