"""The outside faces of the engine: settings, the CLI and (soon) the MCP server."""
