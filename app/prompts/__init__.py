"""Stage 2, prompts: templates with front matter, variables and their sandboxed rendering."""
