"""Workload modules; each registers its workloads with bench.harness.REGISTRY on import."""
