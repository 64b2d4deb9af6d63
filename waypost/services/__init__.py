"""Services: the domain rules applied to the store. Handlers call these and nothing else."""
