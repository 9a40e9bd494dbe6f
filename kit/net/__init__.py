"""kit's network half: server engines (servers/<name>.c|.cpp + .py), the load
generator (loadgen.c), their build (build.py), the namespaces and veth they
run across (netns.py), the network job (job.py) and its running into a kit
Result (run.py). One unit at layer 4, beside the storage runner."""
