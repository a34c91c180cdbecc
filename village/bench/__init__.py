"""`village bench`: published benchmark figures, each against a baseline measured in the
same process (see BENCHMARKS.md).

    from village.bench.suite import run_suite, print_table
    print_table(run_suite(quick=True))
"""
