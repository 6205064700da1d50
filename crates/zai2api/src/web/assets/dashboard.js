{{error}}
