"""A minimal MCP Apps host in a Chromium page, to show the live view as Claude would inline.

No ext-apps host library is installed, and the host side of the bridge is small: the page puts
the ``ui://`` resource in a sandboxed iframe (scripts only, an opaque origin, the spec's
restrictive default CSP: no network) and speaks JSON-RPC over ``postMessage`` — it answers
``ui/initialize``, sends ``ui/notifications/tool-input`` and ``tool-result`` once the app says
``initialized``, sizes the frame as the app's ``size-changed`` asks, and passes the app's
``tools/call`` and ``resources/read`` on to the server through an MCP client.
``tests/test_live_view_app.py`` tests the app through it and ``scripts/screenshots`` takes the
README's picture of it.
"""

from __future__ import annotations

from typing import Any

from mcp import Client
from playwright.async_api import Page

# The spec's default policy for an app that declares no domains (SEP-1865, "Host Behavior").
DEFAULT_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self' data:; connect-src 'none';"
)
HOST_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>MCP Apps host</title>
<style>body{font:14px system-ui,sans-serif;margin:16px;background:#eef0f3;color:#333}
.call{margin:0 0 8px;color:#555}.call code{background:#dde1e6;padding:1px 5px;border-radius:4px}
iframe{width:100%;border:1px solid #c8ccd2;border-radius:8px;background:#fff;height:600px}
</style></head>
<body><div class="call" id="caption"></div><iframe id="view"
sandbox="allow-scripts"></iframe>
<script>
window.startApp = function (html, csp, toolInput, toolResult, caption) {
  document.getElementById("caption").textContent = caption;
  const frame = document.getElementById("view");
  const meta = '<meta http-equiv="Content-Security-Policy" content="' + csp + '">';
  frame.srcdoc = html.replace("<head>", "<head>" + meta);
  const send = (message) => frame.contentWindow.postMessage(message, "*");
  window.addEventListener("message", async (event) => {
    if (event.source !== frame.contentWindow) return;
    const m = event.data;
    if (!m || m.jsonrpc !== "2.0" || !m.method) return;
    window.__seen = (window.__seen || []).concat([m.method]);
    if (m.method === "ui/initialize") {
      send({ jsonrpc: "2.0", id: m.id, result: {
        protocolVersion: "2026-01-26",
        hostInfo: { name: "orchestrator-preview-host", version: "1" },
        hostCapabilities: { serverTools: {}, serverResources: {} },
        hostContext: { theme: "light", displayMode: "inline", platform: "web" },
      }});
    } else if (m.method === "ui/notifications/initialized") {
      const input = { arguments: toolInput };
      send({ jsonrpc: "2.0", method: "ui/notifications/tool-input", params: input });
      send({ jsonrpc: "2.0", method: "ui/notifications/tool-result", params: toolResult });
    } else if (m.method === "ui/notifications/size-changed") {
      frame.style.height = Math.max(200, Math.ceil(m.params.height)) + "px";
    } else if (m.method === "tools/call" || m.method === "resources/read") {
      try {
        const result = await window.forwardToServer(m.method, m.params);
        send({ jsonrpc: "2.0", id: m.id, result });
      } catch (e) {
        send({ jsonrpc: "2.0", id: m.id, error: { code: -32000, message: String(e) } });
      }
    } else if (m.id !== undefined) {
      send({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "not offered" } });
    }
  });
};
</script></body></html>"""


def dumped(result: Any) -> dict[str, Any]:
    """An MCP SDK result as the JSON a host passes to an app."""
    answer: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return answer


class AppHost:
    """Shows an app's HTML in ``page`` as a host would after a tool call; the app's requests go
    to ``client``. ``calls`` records them in order: a tool's name, or ``read URI``."""

    def __init__(self, page: Page, client: Client) -> None:
        self.page = page
        self.client = client
        self.calls: list[str] = []

    async def open(
        self,
        html: str,
        tool_input: dict[str, Any],
        tool_result: dict[str, Any],
        *,
        caption: str = "tool call: submit_orchestration",
        csp: str = DEFAULT_CSP,
    ) -> None:
        """Load the host page and start the app with that tool call's arguments and result."""
        await self.page.expose_function("forwardToServer", self._forward)
        await self.page.set_content(HOST_PAGE)
        await self.page.evaluate(
            "([html, csp, input, result, caption]) =>"
            " window.startApp(html, csp, input, result, caption)",
            [html, csp, tool_input, tool_result, caption],
        )

    async def _forward(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "tools/call":
            self.calls.append(params["name"])
            arguments = params.get("arguments") or {}
            return dumped(await self.client.call_tool(params["name"], arguments))
        self.calls.append(f"read {params['uri']}")
        return dumped(await self.client.read_resource(params["uri"]))
