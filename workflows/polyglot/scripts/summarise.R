# Per-site mean, standard deviation and linear trend (slope of value over day).
data <- read.csv(snakemake@input[[1]], stringsAsFactors = FALSE)
rows <- lapply(sort(unique(data$site)), function(site) {
  d <- data[data$site == site, ]
  fit <- lm(value ~ day, data = d)
  data.frame(
    site = site,
    n = nrow(d),
    mean = sprintf("%.4f", mean(d$value)),
    sd = sprintf("%.4f", sd(d$value)),
    slope = sprintf("%.4f", unname(coef(fit)[["day"]]))
  )
})
write.table(do.call(rbind, rows), snakemake@output[[1]], sep = "\t", quote = FALSE,
            row.names = FALSE)
