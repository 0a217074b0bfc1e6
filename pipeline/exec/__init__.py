"""The Ray execution of the tokenize job, the only code that imports Ray: joining or starting
Ray (`cluster`) with the reaper that ends a killed driver's local Ray (`reaper`), the actor
pool sized from the cluster (`pool`), the tokenize actor (`worker`) and its decode tasks
(`decode_tasks`), the driver (`ray_exec.run_job`) and job submission to a cluster (`submit`)."""
