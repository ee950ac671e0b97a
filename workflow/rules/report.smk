# report: paper-style tables and figures; `snakemake --report report.html` shows them.


rule report:
    input:
        unpack(stage_inputs("report")),
    output:
        index=ROOT + "reports/README.md",
        tables=report(directory(ROOT + "reports/tables"), patterns=["{name}.csv"], category="Tables"),
        figures=report(directory(ROOT + "reports/figures"), patterns=["{name}.png"], category="Figures"),
    log:
        ROOT + "logs/report/trained.log",
    params:
        plan=PLAN_FILE,
    shell:
        "ramit report --plan {params.plan} --source trained > {log} 2>&1"


rule report_released:
    input:
        unpack(stage_inputs("report-released")),
    output:
        index=ROOT + "reports/released/README.md",
        tables=report(directory(ROOT + "reports/released/tables"), patterns=["{name}.csv"],
                      category="Released weights"),
        figures=report(directory(ROOT + "reports/released/figures"), patterns=["{name}.png"],
                       category="Released weights"),
    log:
        ROOT + "logs/report/released.log",
    params:
        plan=PLAN_FILE,
    shell:
        "ramit report --plan {params.plan} --source released > {log} 2>&1"
