"""The Streamlit app over kdcore: thin pages that read studies from MLflow and chart them."""
