# report: paper-style tables and figures; `snakemake --report report.html` shows them.


rule report:
    input:
        unpack(W.inputs("report")),
    output:
        index=W.at("reports/README.md"),
        tables=report(directory(W.at("reports/tables")), patterns=["{name}.csv"], category="Tables"),
        figures=report(directory(W.at("reports/figures")), patterns=["{name}.png"], category="Figures"),
    log:
        W.at("logs/report/trained.log"),
    params:
        plan=W.plan_file,
    conda:
        "../envs/ramit.yaml"
    shell:
        "ramit report --plan {params.plan} --source trained > {log} 2>&1"


rule report_released:
    input:
        unpack(W.inputs("report-released")),
    output:
        index=W.at("reports/released/README.md"),
        tables=report(directory(W.at("reports/released/tables")), patterns=["{name}.csv"],
                      category="Released weights"),
        figures=report(directory(W.at("reports/released/figures")), patterns=["{name}.png"],
                       category="Released weights"),
    log:
        W.at("logs/report/released.log"),
    params:
        plan=W.plan_file,
    conda:
        "../envs/ramit.yaml"
    shell:
        "ramit report --plan {params.plan} --source released > {log} 2>&1"
