"""The report's sections: each builder takes the StudyData and returns a Section, or None when the
study did not vary (or has not yet recorded) what the section shows."""
