// Prints where Playwright looks for its own Chromium builds, so the installer can link each to the system browser.
// argv: a playwright-core (or patchright-core) directory; PLAYWRIGHT_BROWSERS_PATH set to the server's.
// Output, tab-separated: `<browser> <directory> <executable>` per build, then `link <sha1 of dir> <dir>`, the
// record Playwright keeps of which playwright-core uses those directories (<browsers>/.links/<sha1>), so a
// later `playwright install` never deletes them as stale. The paths change with each playwright-core release:
// asking its own registry is the only stable way to know them.
"use strict";
const fs = require("fs"), path = require("path"), crypto = require("crypto");
const dir = process.argv[2];
let registry;
for (const rel of ["lib/coreBundle.js", "lib/server/registry/index.js", "lib/server/registry.js", "lib/utils/registry.js"]) {
    const file = path.join(dir, rel);
    if (!fs.existsSync(file)) continue;
    const loaded = require(file).registry;
    registry = [loaded, loaded && loaded.registry].find((r) => r && typeof r.findExecutable === "function");
    if (registry) break;
}
if (!registry) { console.error("no browser registry in " + dir); process.exit(2); }
for (const name of ["chromium", "chromium-headless-shell"]) {
    const found = registry.findExecutable(name);
    const exe = found && found.executablePath("javascript");
    if (exe && found.directory) console.log([name, found.directory, exe].join("\t"));
}
console.log(["link", crypto.createHash("sha1").update(dir).digest("hex"), dir].join("\t"));
