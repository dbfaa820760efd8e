"""What every MCP test expects the server to offer: the tool names are the contract."""

TOOL_NAMES = frozenset(
    {
        "submit_orchestration",
        "validate_orchestration",
        "get_status",
        "wait_for_orchestration",
        "get_results",
        "get_report",
        "list_orchestrations",
        "cancel_orchestration",
        "retry_orchestration",
        "approve_task",
        "reject_task",
        "list_task_types",
        "list_mcp_tools",
        "schedule_orchestration",
        "list_schedules",
        "pause_schedule",
        "resume_schedule",
        "delete_schedule",
        "vault_set",
        "vault_list",
        "vault_delete",
    }
)
