// Study materials on the viewer page: a member opening its link before the conference finds the
// documents to read (and asks its questions beside them). Downloads need the token as a bearer
// header (a token never goes in a file's URL), so each file is fetched and saved from a blob.
import { authorisedFetch } from "./api.js";
import { el } from "./dom.js";

function size(bytes) {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

async function save(token, material, status) {
  status.textContent = `Đang tải · Downloading ${material.filename}…`;
  const r = await authorisedFetch(token, material.download_url);
  if (!r.ok) {
    status.textContent = `Không tải được · Download failed (${r.status})`;
    return;
  }
  const url = URL.createObjectURL(await r.blob());
  const link = el("a", { href: url, download: material.filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  status.textContent = "";
}

/** List the conference's materials in `slot` for `token` (the slot stays hidden when there are none). */
export async function mountMaterials(slot, conference, token) {
  const r = await authorisedFetch(token, `/api/v1/conferences/${encodeURIComponent(conference)}/materials`);
  if (!r.ok) return;
  const materials = await r.json();
  if (!materials.length) return;
  const status = el("p", { class: "meta", id: "materials-status", role: "status" });
  const items = materials.map((m) => {
    const button = el("button", { type: "button", class: "download" }, "Tải về · Download");
    button.addEventListener("click", () => save(token, m, status).catch(() => {
      status.textContent = "Không tải được · Download failed";
    }));
    return el("li", { "data-id": m.id }, el("span", { class: "title" }, m.title || m.filename), " ",
      el("span", { class: "meta" }, `${m.filename} · ${size(m.size)}`), " ", button);
  });
  slot.replaceChildren(el("section", { class: "card materials" },
    el("h2", {}, "Tài liệu học tập · Study materials"), el("ul", { id: "materials" }, ...items), status));
  slot.hidden = false;
}
