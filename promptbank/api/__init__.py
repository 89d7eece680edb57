"""The prompt bank's REST API (`/api/v1/promptbank/`): prompts, variants, imports, submissions, releases, export."""
