# evaluate + profile: PSNR/SSIM with the authors' protocol; params, MACs, latency.

EVAL = "results/{source}/{model}/{setting}/{dataset}"

if PLAN.evaluate.save_images:

    rule evaluate:
        output:
            scores=EVAL + ".json",
            per_image=EVAL + ".csv",
            images=directory(EVAL + "_images"),
        input:
            deps(EVAL + ".json"),
        params:
            cmd=cmd(EVAL + ".json"),
        threads: 1
        shell:
            "{params.cmd}"

else:

    rule evaluate:
        output:
            scores=EVAL + ".json",
            per_image=EVAL + ".csv",
        input:
            deps(EVAL + ".json"),
        params:
            cmd=cmd(EVAL + ".json"),
        threads: 1
        shell:
            "{params.cmd}"


rule profile:
    output:
        "results/profile/{model}/{key}.json",
    params:
        cmd=cmd("results/profile/{model}/{key}.json"),
    threads: 1
    shell:
        "{params.cmd}"
