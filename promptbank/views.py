from evalence.pages import SectionLandingView


class IndexView(SectionLandingView):
    section_key = "promptbank"
