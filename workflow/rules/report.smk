# report: paper-style tables and figures.


rule report:
    output:
        index="reports/README.md",
        tables=directory("reports/tables"),
        figures=directory("reports/figures"),
    input:
        deps("reports/README.md"),
    params:
        cmd=cmd("reports/README.md"),
    shell:
        "{params.cmd}"


rule report_released:
    output:
        index="reports/released/README.md",
        tables=directory("reports/released/tables"),
        figures=directory("reports/released/figures"),
    input:
        deps("reports/released/README.md"),
    params:
        cmd=cmd("reports/released/README.md"),
    shell:
        "{params.cmd}"
