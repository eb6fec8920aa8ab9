// Lists the npm packages whose install scripts must run after an --ignore-scripts install, one per line.
// argv: the server's npm prefix, the server's package name. The server's own script that installs a browser
// is printed as `skip<TAB>script` instead: the system Chromium is used, nothing may download one.
"use strict";
const fs = require("fs"), path = require("path");
const [prefix, server] = process.argv.slice(2);
const lock = JSON.parse(fs.readFileSync(path.join(prefix, "node_modules", ".package-lock.json"), "utf8"));
const download = /(^|[\s;&|(])(npx\s+(-y\s+|--yes\s+)?)?(playwright|playwright-core|patchright)(@\S+)?\s+install\b|puppeteer\s+browsers\s+install|@puppeteer\/browsers(@\S+)?\s+install/;
const names = new Set();
for (const [where, meta] of Object.entries(lock.packages || {})) {
    if (!where || !meta.hasInstallScript) continue;
    const name = meta.name || where.slice(where.lastIndexOf("node_modules/") + "node_modules/".length);
    if (where === "node_modules/" + server) {
        const scripts = JSON.parse(fs.readFileSync(path.join(prefix, where, "package.json"), "utf8")).scripts || {};
        const own = ["preinstall", "install", "postinstall"].map((k) => scripts[k]).filter((s) => typeof s === "string");
        const browserInstall = own.filter((s) => download.test(s));
        if (browserInstall.length) { for (const s of browserInstall) console.log("skip\t" + s); continue; }
    }
    names.add(name);
}
for (const name of names) console.log(name);
