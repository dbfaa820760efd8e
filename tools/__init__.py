"""The MCP tools: thin, typed wrappers over engine/ and vault/ (arrive with the MCP issue)."""
